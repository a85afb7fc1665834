package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlink-project/mlink/pipeline"
)

// watchOptions are the flags of mlink watch.
type watchOptions struct {
	url, camera string
	// config and dataDir locate the credentials of mlink's embedded server
	// (and, with a config, its address or the external server's).
	config, dataDir string
	// prefix overrides the config's nats.subject_prefix.
	prefix string
	asJSON bool
	since  time.Duration
	count  int
}

func watchFlags() (*flag.FlagSet, *watchOptions) {
	fs := newFlagSet("watch")
	o := &watchOptions{}
	fs.StringVar(&o.url, "nats", "", "NATS server URL (default: the config's nats.url or embedded server, else nats://"+pipeline.EmbeddedListen+")")
	fs.StringVar(&o.config, "c", "", "config file of the mlink run to watch: its NATS server, credentials and TLS")
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir, "without -c: the embedded server's data dir, where its credentials are ("+pipeline.EmbeddedCredentialsFile+")")
	fs.StringVar(&o.camera, "camera", "", "only this camera")
	fs.StringVar(&o.prefix, "subject-prefix", "", "the deployment's subject prefix (default: the config's nats.subject_prefix, else "+pipeline.DefaultSubjectPrefix+")")
	fs.BoolVar(&o.asJSON, "json", false, "print each result as one JSON line")
	fs.DurationVar(&o.since, "since", 0, "first replay the stored results of this long ago (e.g. 5m), then follow live")
	fs.IntVar(&o.count, "n", 0, "exit after N results (0: run until interrupted)")
	return fs, o
}

func cmdWatch(args []string) error {
	fs, o := watchFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	natsCfg, err := o.natsConfig()
	if err != nil {
		return err
	}
	subjects := pipeline.SubjectsFor(natsCfg)
	subject := subjects.AllResults()
	if o.camera != "" {
		if err := pipeline.ValidName(o.camera); err != nil {
			return &exitError{2, fmt.Errorf("--camera: %w", err)}
		}
		subject = subjects.Results(o.camera)
	}
	nc, err := pipeline.ConnectRole(natsCfg, pipeline.RoleWatch, "mlink-watch", 0)
	if errors.Is(err, nats.ErrAuthorization) && o.config == "" {
		return fmt.Errorf("%w; mlink watch reads the credentials from --data-dir %s, or from the config of -c FILE", err, o.dataDir)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	seen := 0
	handle := func(data []byte) {
		if ctx.Err() != nil {
			return
		}
		if o.asJSON {
			os.Stdout.Write(append(append([]byte(nil), data...), '\n'))
		} else {
			res, err := pipeline.Unmarshal[pipeline.Result](data)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bad result: %v\n", err)
				return
			}
			printResultLine(os.Stdout, res)
		}
		seen++
		if o.count > 0 && seen >= o.count {
			cancel()
		}
	}

	msgs := make(chan []byte, 1024)
	if o.since > 0 {
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		start := time.Now().Add(-o.since)
		cons, err := js.OrderedConsumer(ctx, subjects.ResultsStream(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subject},
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &start,
		})
		if err != nil {
			return fmt.Errorf("replay results: %w", err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			select {
			case msgs <- m.Data():
			case <-ctx.Done():
			}
		})
		if err != nil {
			return fmt.Errorf("replay results: %w", err)
		}
		defer cc.Stop()
	} else {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			select {
			case msgs <- m.Data:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		defer sub.Unsubscribe()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case data := <-msgs:
			handle(data)
		}
	}
}

// printResultLine prints one result compactly: camera, seq, latency, and
// each model's value with its source (~ predicted, = reused).
func printResultLine(w io.Writer, res *pipeline.Result) {
	names := make([]string, 0, len(res.Outputs))
	for name := range res.Outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, name+"="+outputSummary(res.Outputs[name]))
	}
	partial := ""
	if res.Partial {
		partial = " PARTIAL missing=" + strings.Join(res.Missing, ",")
	}
	fmt.Fprintf(w, "%s #%d %5.0fms %s%s\n", res.Camera, res.Seq, res.LatencyMS, strings.Join(parts, " "), partial)
}

// defaultDataDir is where the demo configs keep the embedded server's data
// (nats.data_dir: ../.mlink/nats from configs/), seen from the checkout.
const defaultDataDir = ".mlink/nats"

// natsConfig is the bus to watch: the config's (-c), its URL overridden
// by --nats, or --nats (default: the embedded server's default address)
// with the credentials of --data-dir.
func (o *watchOptions) natsConfig() (*pipeline.NATSConfig, error) {
	if o.config == "" {
		c := &pipeline.NATSConfig{URL: o.url, DataDir: o.dataDir, SubjectPrefix: o.prefix}
		if c.URL == "" {
			c.URL = "nats://" + pipeline.EmbeddedListen
		}
		return c, o.validPrefix()
	}
	cfg, err := (&configFlags{path: o.config}).load()
	if err != nil {
		return nil, err
	}
	c := &cfg.NATS
	if o.url != "" {
		c.URL = o.url
	}
	if o.prefix != "" {
		c.SubjectPrefix = o.prefix
	}
	if err := o.validPrefix(); err != nil {
		return nil, err
	}
	if c.URL == "" {
		if strings.HasSuffix(c.Listen, ":-1") {
			return nil, &exitError{2, fmt.Errorf("-c %s: its embedded server listens on a free port (nats.listen %s): give --nats URL (mlink run logs it)", o.config, c.Listen)}
		}
		c.URL = "nats://" + c.Listen
	}
	return c, nil
}

func (o *watchOptions) validPrefix() error {
	if o.prefix == "" {
		return nil
	}
	if err := pipeline.ValidSubjectPrefix(o.prefix); err != nil {
		return &exitError{2, fmt.Errorf("--subject-prefix: %w", err)}
	}
	return nil
}
