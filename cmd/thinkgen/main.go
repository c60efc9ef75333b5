// Command thinkgen trains think-then-generate image models with SepGRPO.
//
// Usage:
//
//	thinkgen <command> [flags] [args]
//	thinkgen help <command>
//
// Exit codes: 0 success, 1 the command ran and failed, 2 usage error (an
// unknown command or flag, a bad --set key, an invalid configuration).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// command is one verb of the CLI, in the style of cmd/go's base.Command.
type command struct {
	name  string
	usage string // arguments after the name, e.g. "[flags] <run>"
	short string // one line for the command list
	long  string // paragraphs for `thinkgen help <name>`
	// setup adds the command's flags and returns its run function.
	setup func(fs *pflag.FlagSet, env *env) func(ctx context.Context, args []string) error
}

// env is what a command reads and writes besides its flags.
type env struct {
	stdin          io.Reader // nil reads nothing
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError is a mistake in how the command was called: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func commands() []*command {
	cmds := []*command{
		versionCommand(),
		doctorCommand(),
		configCommand(),
		selftestCommand(),
		modelCommand(),
		planCommand(),
		pretrainCommand(),
		trainCommand(),
		workerCommand(),
		launchCommand(),
		dataCommand(),
		rewardServeCommand(),
		serveCommand(),
		evalCommand(),
		compareCommand(),
		curvesCommand(),
		generateCommand(),
		gcCommand(),
		exportCommand(),
		importCommand(),
		reportCommand(),
		runsCommand(),
		sweepCommand(),
		tensorboardCommand(),
		verifyCommand(),
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, e *env) int {
	cmds := commands()
	if len(args) == 0 {
		printUsage(e.stderr, cmds)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		if len(rest) == 0 {
			printUsage(e.stdout, cmds)
			return 0
		}
		c := find(cmds, rest[0])
		if c == nil {
			fmt.Fprintf(e.stderr, "thinkgen help: unknown command %q\n", rest[0])
			return 2
		}
		fs, _ := newFlagSet(c, e)
		printHelp(e.stdout, c, fs)
		return 0
	}
	c := find(cmds, name)
	if c == nil {
		fmt.Fprintf(e.stderr, "thinkgen: unknown command %q\nRun 'thinkgen help' for the list of commands.\n", name)
		return 2
	}
	fs, runFn := newFlagSet(c, e)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printHelp(e.stdout, c, fs)
			return 0
		}
		fmt.Fprintf(e.stderr, "thinkgen %s: %v\nRun 'thinkgen help %s' for usage.\n", c.name, err, c.name)
		return 2
	}
	if err := runFn(ctx, fs.Args()); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "thinkgen %s: %v\n", c.name, err)
			return 2
		}
		fmt.Fprintf(e.stderr, "thinkgen %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

func newFlagSet(c *command, e *env) (*pflag.FlagSet, func(context.Context, []string) error) {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by run
	fs.SortFlags = false
	return fs, c.setup(fs, e)
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(w io.Writer, cmds []*command) {
	fmt.Fprint(w, "thinkgen trains think-then-generate image models (an MLLM that reasons, a DiT that draws) with SepGRPO.\n\n")
	fmt.Fprint(w, "Usage:\n\n\tthinkgen <command> [flags] [args]\n\nCommands:\n\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "\t%-13s %s\n", c.name, c.short)
	}
	fmt.Fprint(w, "\nRun 'thinkgen help <command>' for a command's flags.\n")
}

func printHelp(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: thinkgen %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.long))
	if fs.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}
