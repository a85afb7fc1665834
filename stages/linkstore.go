package stages

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/links"
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
type LinkStore struct {
	obs jetstream.ObjectStore
	log zerolog.Logger
}

// OpenLinkStore creates or opens the links object store of the deployment
// named by subjects.
func OpenLinkStore(ctx context.Context, nc *nats.Conn, subjects pipeline.Subjects, log zerolog.Logger) (*LinkStore, error) {
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
	return &LinkStore{obs: obs, log: pipeline.Component(log, "linkstore")}, nil
}

// Publish stores set as the current links.
func (s *LinkStore) Publish(ctx context.Context, set *links.Set) error {
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

// Latest returns the current links (nil, nil when none were published).
func (s *LinkStore) Latest(ctx context.Context) (*links.Set, error) {
	blob, err := s.obs.GetBytes(ctx, linksObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch links: %w", err)
	}
	set, err := links.UnmarshalSet(blob)
	if err != nil {
		return nil, fmt.Errorf("stored links do not load: %w", err)
	}
	return set, nil
}

// Follow calls install with the current links, if any, and with every set
// published later, until ctx ends. A set that does not load is logged and
// skipped: the predictor keeps the links it has.
func (s *LinkStore) Follow(ctx context.Context, install func(*links.Set)) error {
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
			blob, err := s.obs.GetBytes(ctx, linksObject)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn().Err(err).Msg("fetch links")
				continue
			}
			set, err := links.UnmarshalSet(blob)
			if err != nil {
				s.log.Error().Err(err).Msg("published links do not load; keeping the current ones")
				continue
			}
			install(set)
		}
	}
}
