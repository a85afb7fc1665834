package pipeline

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// NewLogger builds the one root logger: console output in a terminal, JSON
// otherwise (or as configured). Components take children of it with
// Component, adding their camera or model fields.
func NewLogger(cfg LogConfig, w *os.File) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log.level: %w", err)
	}
	var out io.Writer = w
	console := cfg.Format == "console" || (cfg.Format == "auto" && isatty.IsTerminal(w.Fd()))
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger(), nil
}

// Component returns the child logger of one component.
func Component(log zerolog.Logger, name string) zerolog.Logger {
	return log.With().Str("component", name).Logger()
}
