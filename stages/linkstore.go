package stages

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// linksObject is the current links' name in the deployment's links bucket
// (pipeline.Subjects.LinksBucket). An object store, not a key-value
// bucket: a link set can exceed a server's message size limit (1 MiB by
// default), and objects are chunked.
const linksObject = "current"

// LinkStore shares trained links between processes: the scheduler
// publishes every new set, link predictor workers anywhere follow it and
// hot-swap. The store is durable, so a predictor that starts later gets the
// current links at once.
//
// It moves bytes: links publish as their encoding.BinaryMarshaler form and
// come back through the decoder the store was opened with, as a T. The
// store so knows no kind of links, and its caller gets back the type it
// decodes to without a downcast.
type LinkStore[T any] struct {
	obs    jetstream.ObjectStore
	decode func([]byte) (T, error)
	log    zerolog.Logger
}

// OpenLinkStore creates or opens the links object store of the deployment
// named by subjects; decode loads what Publish stored (links.UnmarshalSet).
func OpenLinkStore[T any](ctx context.Context, nc *nats.Conn, subjects pipeline.Subjects, decode func([]byte) (T, error), log zerolog.Logger) (*LinkStore[T], error) {
	bucket := subjects.LinksBucket()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("link store: %w", err)
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "mlink model links (the latest trained set)",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("link store %s: %w", bucket, err)
	}
	return &LinkStore[T]{obs: obs, decode: decode, log: pipeline.Component(log, "linkstore")}, nil
}

// Publish stores set as the current links.
func (s *LinkStore[T]) Publish(ctx context.Context, set encoding.BinaryMarshaler) error {
	blob, err := set.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := s.obs.PutBytes(ctx, linksObject, blob); err != nil {
		return fmt.Errorf("publish links: %w", err)
	}
	s.log.Debug().Int("bytes", len(blob)).Msg("links published")
	return nil
}

// Latest returns the current links (T's zero value and no error when none
// were published).
func (s *LinkStore[T]) Latest(ctx context.Context) (T, error) {
	var none T
	blob, err := s.obs.GetBytes(ctx, linksObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return none, nil
	}
	if err != nil {
		return none, fmt.Errorf("fetch links: %w", err)
	}
	set, err := s.decode(blob)
	if err != nil {
		return none, fmt.Errorf("stored links do not load: %w", err)
	}
	return set, nil
}

// linksFetchTimeout bounds one fetch of the published links.
const linksFetchTimeout = 3 * time.Second

// Follow calls install with the current links, if any, and with every set
// published later, until ctx ends. A set that does not load is logged and
// skipped: the predictor keeps the links it has.
func (s *LinkStore[T]) Follow(ctx context.Context, install func(T)) error {
	w, err := s.obs.Watch(ctx)
	if err != nil {
		return fmt.Errorf("follow links: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case info, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if info == nil || info.Deleted || info.Name != linksObject {
				continue // nil marks the end of the initial values
			}
			// Bounded: an update whose object was replaced while it was
			// read waits for chunks that were purged (nats.go's reader
			// blocks until its context ends); the replacement's own
			// update comes next and fetches what is there now.
			fetchCtx, cancel := context.WithTimeout(ctx, linksFetchTimeout)
			blob, err := s.obs.GetBytes(fetchCtx, linksObject)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn().Err(err).Msg("fetch links")
				continue
			}
			set, err := s.decode(blob)
			if err != nil {
				s.log.Error().Err(err).Msg("published links do not load; keeping the current ones")
				continue
			}
			install(set)
		}
	}
}
