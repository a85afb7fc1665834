package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/scheduler"
)

// configFlags are the flags of the commands that read a config: -c always,
// and where a command offers them, overrides of the file (flags win, as
// in nats-server).
type configFlags struct {
	path       string
	natsURL    string
	dataDir    string
	policy     string
	budget     string
	budgetMode string
	training   string
}

type flagSet interface {
	StringVar(p *string, name, value, usage string)
}

// register adds -c, and the overrides when overrides is true.
func (c *configFlags) register(fs flagSet, overrides bool) {
	fs.StringVar(&c.path, "c", "", "config file")
	if overrides {
		fs.StringVar(&c.natsURL, "nats", "", "NATS server URL (overrides nats.url; empty: embedded server)")
		fs.StringVar(&c.dataDir, "data-dir", "", "NATS data dir: the embedded server's store and credentials (overrides nats.data_dir)")
		fs.StringVar(&c.policy, "policy", "", "scheduling policy (overrides scheduler.policy): "+strings.Join(pipeline.PolicyNames(), ", "))
		fs.StringVar(&c.budget, "budget", "", "budget per frame (overrides budget.*), e.g. 5GB, 400ms or 5GB,400ms")
		fs.StringVar(&c.budgetMode, "budget-mode", "", "what a time budget means (overrides budget.time_mode): mean (throughput, the default) or cap (no frame over it)")
		fs.StringVar(&c.training, "training", "", "where links are trained (overrides scheduler.training): local, or remote (by the trainer role)")
	}
}

// load reads the config with the overrides applied before validation.
func (c *configFlags) load() (*pipeline.Config, error) {
	if c.path == "" {
		return nil, &exitError{2, errors.New("-c FILE is required")}
	}
	var budgetErr error
	cfg, err := pipeline.LoadConfig(c.path, func(cfg *pipeline.Config) {
		if c.natsURL != "" {
			cfg.NATS.URL = c.natsURL
		}
		if c.dataDir != "" {
			// A flag's relative path is the shell's, not the config file's.
			dir, _ := filepath.Abs(c.dataDir)
			cfg.NATS.DataDir = dir
		}
		if c.policy != "" {
			cfg.Scheduler.Policy = pipeline.PolicyName(c.policy)
		}
		if c.training != "" {
			cfg.Scheduler.Training = c.training
		}
		if c.budget != "" {
			b, err := scheduler.ParseBudget(c.budget)
			budgetErr = err
			cfg.Budget.GPUMemory, cfg.Budget.MSPerFrame = pipeline.ByteSize(b.Memory), b.MS
		}
		if c.budgetMode != "" {
			cfg.Budget.TimeMode = c.budgetMode
		}
	})
	if budgetErr != nil {
		return nil, &exitError{2, fmt.Errorf("--budget: %w", budgetErr)}
	}
	return cfg, err
}

// start loads the config and makes the command's root logger and a context
// cancelled by SIGINT or SIGTERM (call stop when done).
func (c *configFlags) start() (cfg *pipeline.Config, log zerolog.Logger, ctx context.Context, stop context.CancelFunc, err error) {
	if cfg, err = c.load(); err != nil {
		return nil, log, nil, nil, err
	}
	if log, err = pipeline.NewLogger(cfg.Log, os.Stderr); err != nil {
		return nil, log, nil, nil, err
	}
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return cfg, log, ctx, stop, nil
}
