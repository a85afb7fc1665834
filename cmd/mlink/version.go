package main

import (
	"fmt"
	"runtime/debug"
)

// version overrides the module version where the build has no VCS
// information to take it from (an image built without .git: `docker
// build --build-arg VERSION=...` sets it with -ldflags -X main.version=).
var version = ""

func cmdVersion(args []string) error {
	if err := parseFlags(newFlagSet("version"), args); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Println(versionString(bi))
	return nil
}

// versionString is "mlink VERSION (REVISION, GO)": the module version Go
// stamps (from the VCS tag, else a pseudo-version, with +dirty) and the
// commit, short like `git rev-parse --short HEAD`, with -dirty when the
// checkout had uncommitted changes.
func versionString(bi *debug.BuildInfo) string {
	if bi == nil {
		// Only a binary built without module support has no build info.
		v := version
		if v == "" {
			v = "unknown"
		}
		return "mlink " + v + " (no build information)"
	}
	v := bi.Main.Version
	if version != "" {
		v = version
	}
	if v == "" {
		v = "(devel)"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		rev = "revision unknown: built without VCS information"
	case len(rev) > 7:
		rev = rev[:7]
	}
	if dirty {
		rev += "-dirty"
	}
	return fmt.Sprintf("mlink %s (%s, %s)", v, rev, bi.GoVersion)
}
