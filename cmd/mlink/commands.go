package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mlink-project/mlink/pipeline"
)

// command is one mlink command. The table of them is what main dispatches
// on and what the top-level usage is printed from, so the two cannot
// disagree; each command's flags are described by its own flag set (-h).
type command struct {
	// name is the command as typed: "run", or "bench pipeline" for a
	// subcommand.
	name string
	// synopsis is its arguments as the top-level usage shows them; a test
	// checks every flag named here exists in the command's flag set.
	synopsis string
	help     string
	// hidden commands are accepted but not listed (aliases).
	hidden bool
	run    func(args []string) error
	// flags builds the flag set run parses, and returns the config flags
	// it registers (nil: the command reads no config through them). -h
	// prints it; the compose test parses service commands with it.
	flags func() (*flag.FlagSet, *configFlags)
}

// commands is a function, not a package variable: the commands' own code
// reaches the table (usage, dispatch), which a variable's initializer may
// not refer back to.
func commands() []command {
	return []command{
		{name: "run", synopsis: "-c FILE [--max-frames N] [--nats URL] [--policy P] [--budget B] [--budget-mode mean|cap] [--training local|remote] [--role ROLES] [--status auto|on|off] [--http ADDR|off] [--stop-timeout D]",
			help: "run the pipeline (an embedded NATS server unless nats.url or --nats is set)", run: cmdRun,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _, cf := runFlags(); return fs, cf }},
		{name: "watch", synopsis: "[-c FILE] [--nats URL] [--data-dir DIR] [--camera ID] [--json] [--since D] [-n N]",
			help: "print results live (~ predicted, = reused), after the stored ones of --since", run: cmdWatch,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _ := watchFlags(); return fs, nil }},
		{name: "validate", synopsis: "-c FILE [--policy P] [--budget B]",
			help: "check a config: every problem is listed, exit status 2 on any", run: cmdValidate,
			flags: validateFlags},
		{name: "models", synopsis: "-c FILE [--frames N] [--video FILE]",
			help: "load each model and measure its load time, memory and ms/frame on the config's video", run: cmdModels,
			flags: func() (*flag.FlagSet, *configFlags) { fs, cf, _ := modelsFlags(); return fs, cf }},
		{name: "profile", synopsis: "-c FILE --out TRACE [--max-frames N]",
			help: "run every model on every frame and record a trace", run: cmdProfile,
			flags: func() (*flag.FlagSet, *configFlags) { fs, cf, _ := profileFlags(); return fs, cf }},
		{name: "links train", synopsis: "--trace TRACE --out DIR [--epochs N] [--seed S] [--train-frac F] [--decoder set|attention] [--no-temporal]",
			help: "train model links on the first part of a trace (by time), then one ensemble per target", run: cmdLinksTrain,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _ := linksTrainFlags(); return fs, nil }},
		{name: "links eval", synopsis: "--trace TRACE --links DIR [--train-frac F] [--json]",
			help: "print link, ensemble, baseline and temporal link accuracy on the rest of the trace", run: cmdLinksEval,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _ := linksEvalFlags(); return fs, nil }},
		{name: "links drift", synopsis: "--trace TRACE [--change-at N|auto] [--window W] [--period P] [--labels K] [--seed S] [--json] | --make --trace OUT [--before T] [--after T]",
			help: "adaptation after a scene change: offline-only, periodic and active-sampling fine-tuning, periodic retraining, against an oracle", run: cmdLinksDrift,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _ := linksDriftFlags(); return fs, nil }},
		{name: "bench", synopsis: "--trace TRACE [-c FILE] [--budgets B,...] [--policies P,...] [--sampling native,1fps] [--unit ms|memory] [--budget-mode mean,cap] [--out DIR]",
			help: "replay a trace through each policy at each budget: table, results.json, plots", run: cmdBenchGroup,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _ := benchTraceFlags(); return fs, nil }},
		{name: "bench trace", hidden: true, run: cmdBenchTrace,
			flags: func() (*flag.FlagSet, *configFlags) { fs, _ := benchTraceFlags(); return fs, nil }},
		{name: "bench pipeline", synopsis: "-c FILE [--frames N] [--split] [--out FILE.json]",
			help: "measure throughput, latency and the pipeline's own overhead", run: cmdBenchPipeline,
			flags: func() (*flag.FlagSet, *configFlags) { fs, cf, _ := benchPipelineFlags(); return fs, cf }},
		{name: "bench live", synopsis: "-c FILE [--policy P] [--budget B] [--seconds N]",
			help: "replay the config's files as live cameras through a policy: frames/s, stale drops, savings", run: cmdBenchLive,
			flags: func() (*flag.FlagSet, *configFlags) { fs, cf, _ := benchLiveFlags(); return fs, cf }},
		{name: "bench soak", synopsis: "-c FILE [--policy P] [--budget B] [--duration D] [--every D] [--json FILE]",
			help: "run the config's cameras for a long time: frames/s, p99 latency, drops and memory per interval; exit 1 if not held", run: cmdBenchSoak,
			flags: func() (*flag.FlagSet, *configFlags) { fs, cf, _, _, _ := benchSoakFlags(); return fs, cf }},
		{name: "version", help: "print the module version and the VCS revision it was built from", run: cmdVersion,
			flags: func() (*flag.FlagSet, *configFlags) { return newFlagSet("version"), nil }},
		{name: "help", synopsis: "[COMMAND]", help: "print this usage, or a command's", run: cmdHelp,
			flags: func() (*flag.FlagSet, *configFlags) { return newFlagSet("help"), nil }},
	}
}

// findCommand returns the command args start with (the longest name that
// matches, so "bench live" wins over "bench") and the arguments after it.
func findCommand(args []string) (*command, []string) {
	var best *command
	n := 0
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(words) > n && len(words) <= len(args) && slices.Equal(words, args[:len(words)]) {
			best, n = &c, len(words)
		}
	}
	if best == nil {
		return nil, args
	}
	return best, args[n:]
}

// lookupCommand finds a command by its full name.
func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// subcommands are the listed commands under a group name ("links").
func subcommands(group string) []command {
	var subs []command
	for _, c := range commands() {
		if strings.HasPrefix(c.name, group+" ") && !c.hidden {
			subs = append(subs, c)
		}
	}
	return subs
}

// errHelp reports that usage was asked for and printed: exit status 0.
var errHelp = errors.New("help requested")

// dispatch runs the command that args name.
func dispatch(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage())
		return &exitError{2, errors.New("no command given")}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Print(usage())
		return errHelp
	}
	c, rest := findCommand(args)
	if c == nil {
		// A group without a command of its own ("links") shows its
		// subcommands.
		if subs := subcommands(args[0]); len(subs) > 0 {
			if len(args) > 1 && isHelpFlag(args[1]) {
				writeCommandList(os.Stdout, subs)
				return errHelp
			}
			writeCommandList(os.Stderr, subs)
			if len(args) == 1 {
				return &exitError{2, fmt.Errorf("give a subcommand (%s)", commandNames(subs))}
			}
			return &exitError{2, fmt.Errorf("unknown subcommand %q (known: %s)", args[1], commandNames(subs))}
		}
		fmt.Fprint(os.Stderr, usage())
		return &exitError{2, fmt.Errorf("unknown command %q (run 'mlink help' for the list)", args[0])}
	}
	return c.run(rest)
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "help" }

// commandName is how messages call the command args name: "mlink bench
// live", or "mlink links" for a group.
func commandName(args []string) string {
	if c, _ := findCommand(args); c != nil {
		return "mlink " + c.name
	}
	if len(args) > 0 && len(subcommands(args[0])) > 0 {
		return "mlink " + args[0]
	}
	return "mlink"
}

func commandNames(cs []command) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// usage is the top-level usage, printed from the command table and the
// lists the config accepts.
func usage() string {
	var b strings.Builder
	b.WriteString("mlink — multi-model video analytics over NATS\n\nUsage:\n")
	var listed []command
	for _, c := range commands() {
		if !c.hidden {
			listed = append(listed, c)
		}
	}
	writeCommandList(&b, listed)
	fmt.Fprintf(&b, `
Policies (--policy, scheduler.policy): %s
Budgets (--budget): 5GB, 450ms, or both as 5GB,450ms; --budget-mode mean or cap
Roles (--role): all, or a comma list of %s

Run 'mlink COMMAND -h' for a command's flags.
Exit status: 0 success, 1 runtime failure, 2 invalid input (config, flags).
`, strings.Join(pipeline.PolicyNames(), ", "), strings.Join(allRoles, ","))
	return b.String()
}

func writeCommandList(w io.Writer, cs []command) {
	for _, c := range cs {
		line := "  mlink " + c.name
		if c.synopsis != "" {
			line += " " + c.synopsis
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, c.help)
	}
}

// newFlagSet makes a command's flag set: errors are returned, not fatal,
// and -h prints the command's synopsis and help above its flags.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mlink "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		w := fs.Output()
		synopsis, help := "[flags]", ""
		if c, ok := lookupCommand(name); ok {
			synopsis, help = c.synopsis, c.help
		}
		fmt.Fprintf(w, "Usage: mlink %s %s\n", name, synopsis)
		if help != "" {
			fmt.Fprintf(w, "  %s\n", help)
		}
		if subs := subcommands(name); len(subs) > 0 {
			fmt.Fprintf(w, "\nCommands under %s:\n", name)
			writeCommandList(w, subs)
		}
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a command's arguments. -h prints the usage on stdout
// (it was asked for: exit status 0); a bad flag prints the error and the
// usage on stderr (exit status 2). Arguments left after the flags are an
// error: no command takes any, and silently ignoring one hides a typo
// such as a value given without its flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Stdout.Write(out.Bytes())
		return errHelp
	case err != nil:
		os.Stderr.Write(out.Bytes())
		return &exitError{2, err}
	case fs.NArg() > 0:
		return &exitError{2, fmt.Errorf("unexpected argument %q (every value needs its flag; see '%s -h')", fs.Arg(0), fs.Name())}
	}
	return nil
}

func cmdHelp(args []string) error {
	if len(args) > 0 && isHelpFlag(args[0]) {
		return parseFlags(newFlagSet("help"), []string{"-h"})
	}
	if len(args) == 0 {
		fmt.Print(usage())
		return nil
	}
	// mlink help COMMAND is mlink COMMAND -h.
	err := dispatch(append(append([]string(nil), args...), "-h"))
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// cmdBenchGroup is mlink bench: a trace replay when flags follow, which a
// word that is none of its subcommands is not.
func cmdBenchGroup(args []string) error {
	subs := subcommands("bench")
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") {
		bench, _ := lookupCommand("bench")
		writeCommandList(os.Stderr, append([]command{bench}, subs...))
		if len(args) == 0 {
			return &exitError{2, fmt.Errorf("give --trace TRACE, or a subcommand (%s)", commandNames(subs))}
		}
		return &exitError{2, fmt.Errorf("unknown subcommand %q (known: %s; a trace replay takes --trace TRACE)", args[0], commandNames(subs))}
	}
	return cmdBenchTrace(args)
}
