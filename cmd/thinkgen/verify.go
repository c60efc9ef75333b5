package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/storage/runs"
)

// errFaults is verify's failure: the faults are already printed.
var errFaults = errors.New("the run has faults")

func verifyCommand() *command {
	return &command{
		name:  "verify",
		usage: "--run <run> [flags]",
		short: "check a run in its store (fsck): manifests, checksums, run.json; exit 1 on a fault",
		long: `Verify checks a run as it is stored, the first tool to run after an
incident. It reads run.json, then every manifest of a committed step and of a
kept checkpoint version, and reads every object they list through, checking
its size and sha256. A fault is: run.json unreadable; a step run.json records
as committed without a manifest, without one metrics shard or without a seed;
a kept version without a manifest; the policy version not kept; a manifest
that does not parse; an object missing, truncated or altered; a step manifest
beyond run.json's next step. Each is printed naming the step, version or
key, and verify exits 1.

It also lists orphans (objects of steps and checkpoints that no manifest it
checked lists: stale attempts, versions whose deletion was interrupted, writes
in flight; thinkgen gc removes those of committed units) and notes (a step
committed after run.json was last written, which train --resume records).
Neither is a fault.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "the run to check (required)")
			return func(ctx context.Context, args []string) error {
				store, err := rf.openRunStore(ctx, args, *run)
				if err != nil {
					return err
				}
				c, err := runs.Verify(ctx, store, *run)
				if err != nil {
					return err
				}
				if rf.json() {
					orphans := make([]string, len(c.Orphans))
					for i, o := range c.Orphans {
						orphans[i] = o.Key
					}
					json.NewEncoder(e.stdout).Encode(map[string]any{"run": *run, "store": store.String(), "ok": c.OK(),
						"committed": c.Committed, "kept": c.Kept, "objects": c.Objects, "faults": c.Faults, "orphans": orphans, "notes": c.Notes})
				} else {
					for _, f := range c.Faults {
						fmt.Fprintf(e.stdout, "fault: %s\n", f)
					}
					for _, o := range c.Orphans {
						fmt.Fprintf(e.stdout, "orphan: %s (%d bytes)\n", o.Key, o.Size)
					}
					for _, n := range c.Notes {
						fmt.Fprintf(e.stdout, "note: %s\n", n)
					}
					fmt.Fprintf(e.stdout, "verify %s in %s: %d steps committed, versions %v kept, %d objects checked: %d fault(s), %d orphan(s)\n",
						*run, store, c.Committed, c.Kept, c.Objects, len(c.Faults), len(c.Orphans))
				}
				if !c.OK() {
					return errFaults
				}
				return nil
			}
		},
	}
}
