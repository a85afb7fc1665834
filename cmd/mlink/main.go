// Command mlink runs many ML models over many camera streams within a
// hardware budget. Only wiring lives here: flags, config, signals, and the
// start/stop order of the stages. The commands are listed in commands.go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/mlink-project/mlink/pipeline"
)

// exitError carries a process exit code (2 for invalid input).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	err := dispatch(os.Args[1:])
	if err == nil || errors.Is(err, errHelp) {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", commandName(os.Args[1:]), err)
	var ee *exitError
	var ce *pipeline.ConfigError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case errors.As(err, &ce):
		os.Exit(2)
	}
	os.Exit(1)
}

// validateFlags are the flags of mlink validate: -c and the overrides, so
// that a deployment's flags can be checked with its file.
func validateFlags() (*flag.FlagSet, *configFlags) {
	fs := newFlagSet("validate")
	cf := &configFlags{}
	cf.register(fs, true)
	return fs, cf
}

func cmdValidate(args []string) error {
	fs, cf := validateFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	fmt.Printf("%s: ok (%d cameras, %d models, policy %s)\n", cf.path, len(cfg.Cameras), len(cfg.Models), cfg.Scheduler.Policy)
	return nil
}
