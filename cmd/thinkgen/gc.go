package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

func gcCommand() *command {
	return &command{
		name:  "gc",
		usage: "--run <run> [--dry-run] [flags]",
		short: "delete a run's objects that no committed manifest references",
		long: `Gc deletes the objects of a run that its committed steps and checkpoints
left behind: shards of stale attempts (a task whose lease expired and was
re-run) and leftovers of writes that failed before the step was committed by
a later attempt, and checkpoint versions that run.json no longer keeps but
whose deletion was interrupted. Only directories that hold a committed
manifest are cleaned; a step or checkpoint still being written (no manifest
yet) is never touched, nor is any object a kept manifest lists. Data goes
before manifests, so an interrupted gc leaves nothing the next one misses.

With --dry-run it lists what it would delete and deletes nothing.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "the run to clean (required)")
			dryRun := fs.Bool("dry-run", false, "list the objects that would be deleted; delete nothing")
			return func(ctx context.Context, args []string) error {
				store, err := rf.openRunStore(ctx, args, *run)
				if err != nil {
					return err
				}
				garbage, err := runs.GC(ctx, store, *run, storage.GCOptions{DryRun: *dryRun})
				var total int64
				for _, o := range garbage {
					total += o.Size
				}
				if rf.json() {
					keys := make([]string, len(garbage))
					for i, o := range garbage {
						keys[i] = o.Key
					}
					out := map[string]any{"run": *run, "store": store.String(), "dry_run": *dryRun, "objects": keys, "bytes": total}
					if err != nil {
						out["error"] = err.Error()
					}
					json.NewEncoder(e.stdout).Encode(out)
					return err
				}
				verb := "deleted"
				if *dryRun {
					verb = "would delete"
				}
				for _, o := range garbage {
					fmt.Fprintf(e.stdout, "%s %s (%d bytes)\n", verb, o.Key, o.Size)
				}
				fmt.Fprintf(e.stdout, "gc %s in %s: %s %d object(s), %d bytes\n", *run, store, verb, len(garbage), total)
				return err
			}
		},
	}
}
