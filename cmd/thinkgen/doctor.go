package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/storage"
)

// wantLibtorch is the libtorch version gotch v0.9.1 is generated against.
const wantLibtorch = "2.1.0"

// check is one line of the doctor's report.
type check struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

func doctorCommand() *command {
	return &command{
		name:  "doctor",
		usage: "[flags]",
		short: "check libtorch, threads, CUDA and the object store",
		long: `Doctor reports what this machine gives thinkgen: the libtorch and gotch
versions, libtorch's CPU threads, CUDA availability, and whether the store of
the configuration (storage.uri, or --store) is reachable and writable.

It exits 1 when something a run needs is missing: a libtorch other than
2.1.0, a CUDA device asked for but not available, or an unreachable store.
With --log-format json it prints the report as one JSON object.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the object store")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				cfg, err := rf.load()
				if err != nil {
					return err
				}
				checks := []check{
					{Name: "thinkgen", Value: fmt.Sprintf("%s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH), OK: true},
					{Name: "gotch", Value: gotchVersion(), OK: true},
				}
				lt := libtorch.Version()
				c := check{Name: "libtorch", Value: lt, OK: lt == wantLibtorch}
				if !c.OK {
					c.Detail = "gotch v0.9.1 needs libtorch " + wantLibtorch
				}
				checks = append(checks, c)
				checks = append(checks, check{
					Name:  "cpu threads",
					Value: fmt.Sprintf("%d intra-op, %d inter-op (%d cores)", libtorch.Threads(), libtorch.InteropThreads(), runtime.NumCPU()),
					OK:    true,
				})
				cuda := check{Name: "cuda", OK: true, Value: "not available"}
				if libtorch.CUDAAvailable() {
					cuda.Value = fmt.Sprintf("%d device(s), cuDNN %v", libtorch.CUDADeviceCount(), libtorch.CuDNNAvailable())
					// Say so until a GPU run has been verified (docs/scale.md).
					cuda.Detail = "training on cuda is unverified: thinkgen's tests run on the CPU"
				} else if strings.HasPrefix(cfg.Run.Device, "cuda") {
					cuda.OK = false
					cuda.Detail = "run.device is " + cfg.Run.Device
				}
				checks = append(checks, cuda)

				pctx, cancel := context.WithTimeout(ctx, *timeout)
				desc, err := storage.Probe(pctx, cfg.Storage)
				cancel()
				st := check{Name: "store", Value: desc, OK: err == nil}
				if err != nil {
					st.Value = cfg.Storage.URI
					st.Detail = err.Error()
				}
				checks = append(checks, st)

				failed := 0
				for _, c := range checks {
					if !c.OK {
						failed++
					}
				}
				if rf.json() {
					enc := json.NewEncoder(e.stdout)
					if err := enc.Encode(map[string]any{"ok": failed == 0, "checks": checks}); err != nil {
						return err
					}
				} else {
					for _, c := range checks {
						mark := "ok"
						if !c.OK {
							mark = "FAIL"
						}
						line := fmt.Sprintf("%-4s %-12s %s", mark, c.Name, c.Value)
						if c.Detail != "" {
							line += ": " + c.Detail
						}
						fmt.Fprintln(e.stdout, line)
					}
				}
				if failed > 0 {
					return fmt.Errorf("%d check(s) failed", failed)
				}
				return nil
			}
		},
	}
}
