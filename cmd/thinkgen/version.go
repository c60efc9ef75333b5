package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// version is set at build time by the Makefile (-ldflags -X main.version=…).
var version = "dev"

func versionCommand() *command {
	return &command{
		name:  "version",
		usage: "",
		short: "print the versions of thinkgen, gotch and libtorch",
		long:  "Version prints the thinkgen version, the Go toolchain, and the gotch and libtorch versions the binary was built with.",
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "thinkgen %s (%s, %s/%s)\ngotch %s\nlibtorch %s\n",
					version, runtime.Version(), runtime.GOOS, runtime.GOARCH, gotchVersion(), libtorch.Version())
				return nil
			}
		},
	}
}

// gotchVersion returns the gotch module version the binary was built with,
// noting the local patched copy when a replace directive points at it.
func gotchVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path != "github.com/sugarme/gotch" {
			continue
		}
		if d.Replace != nil && (d.Replace.Version == "" || d.Replace.Version == "(devel)") {
			return d.Version + " (patched copy at " + d.Replace.Path + ")"
		}
		return d.Version
	}
	return "unknown"
}
