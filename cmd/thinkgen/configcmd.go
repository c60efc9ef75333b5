package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

func configCommand() *command {
	return &command{
		name:  "config",
		usage: "print|validate|get <key> [flags]",
		short: "print, validate or query a resolved run configuration",
		long: `Config resolves a run configuration the way every command does (defaults,
then the --config YAML file, then --set overrides and the shorthand flags)
and then:

	print      writes the resolved configuration as YAML
	validate   only checks it
	get KEY    prints the value of one dotted key, e.g. optim.lr

Unknown keys are rejected with the file and line that named them; invalid
values name the key and the allowed range. Both exit with status 2.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("missing action: print, validate or get <key>")
				}
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				switch args[0] {
				case "print":
					if err := noArgs(args[1:]); err != nil {
						return err
					}
					out, err := cfg.YAML()
					if err != nil {
						return err
					}
					_, err = e.stdout.Write(out)
					return err
				case "validate":
					if err := noArgs(args[1:]); err != nil {
						return err
					}
					name := strings.Join(rf.configs, " + ")
					if name == "" {
						name = "the default configuration"
					}
					fmt.Fprintf(e.stdout, "%s is valid (%d SepGRPO steps: %v × %d cycles)\n",
						name, cfg.Schedule.TotalSteps(), cfg.Schedule.Phases, cfg.Schedule.Cycles)
					return nil
				case "get":
					if len(args) != 2 {
						return usagef("get takes one key, e.g. config get optim.lr")
					}
					v, err := cfg.Get(args[1])
					if err != nil {
						return &usageError{err}
					}
					fmt.Fprintln(e.stdout, v)
					return nil
				default:
					return usagef("unknown action %q: want print, validate or get", args[0])
				}
			}
		},
	}
}
