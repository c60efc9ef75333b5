package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/storage"
)

// runFlags are the flags every command that reads a run configuration
// shares. The shorthand flags (--device, --seed, --store, --run-dir) are
// applied as --set overrides after the explicit ones, so flags beat the
// YAML file, which beats the defaults.
type runFlags struct {
	configs   []string
	sets      []string
	store     string
	runDir    string
	device    string
	seed      int64
	logFormat string
	fs        *pflag.FlagSet
}

func addRunFlags(fs *pflag.FlagSet) *runFlags {
	f := &runFlags{fs: fs}
	fs.StringArrayVarP(&f.configs, "config", "c", nil, "YAML run configuration (e.g. configs/tiny.yaml); repeat to overlay files in order, later keys winning (e.g. -c configs/tiny.yaml -c configs/tiny-vl.yaml); none uses the defaults")
	fs.StringArrayVar(&f.sets, "set", nil, "override one config key, `key=value` (repeatable), e.g. --set optim.lr=1e-4")
	fs.StringVar(&f.store, "store", "", "store URI: a directory or s3://bucket/prefix (sets storage.uri)")
	fs.StringVar(&f.runDir, "run-dir", "", "local directory for run data (sets storage.uri to a directory)")
	fs.StringVar(&f.device, "device", "", "cpu, cuda or cuda:N (sets run.device)")
	fs.Int64Var(&f.seed, "seed", 0, "run seed (sets run.seed)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return f
}

// openStore resolves the configuration and opens its store without
// creating it (openExistingStore): for commands that read a store only.
func (f *runFlags) openStore(ctx context.Context) (storage.Store, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	return openExistingStore(ctx, cfg.Storage)
}

// openRunStore checks the arguments of a command that acts on one run of
// a store (no positional arguments, --run given and valid) and opens the
// store as openStore does.
func (f *runFlags) openRunStore(ctx context.Context, args []string, run string) (storage.Store, error) {
	if err := noArgs(args); err != nil {
		return nil, err
	}
	if err := checkRun(run, "--run is required"); err != nil {
		return nil, err
	}
	return f.openStore(ctx)
}

// load resolves the configuration; every failure is a usage error.
func (f *runFlags) load() (*config.Config, error) {
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, usagef("--log-format %q: want text or json", f.logFormat)
	}
	sets := append([]string(nil), f.sets...)
	if f.fs.Changed("store") && f.fs.Changed("run-dir") {
		return nil, usagef("--store and --run-dir both name the store; give one")
	}
	if f.fs.Changed("run-dir") {
		if strings.Contains(f.runDir, "://") {
			return nil, usagef("--run-dir %q: want a local directory (use --store for URIs)", f.runDir)
		}
		sets = append(sets, "storage.uri="+f.runDir)
	}
	if f.fs.Changed("store") {
		sets = append(sets, "storage.uri="+f.store)
	}
	if f.fs.Changed("device") {
		sets = append(sets, "run.device="+f.device)
	}
	if f.fs.Changed("seed") {
		sets = append(sets, "run.seed="+strconv.FormatInt(f.seed, 10))
	}
	cfg, err := config.LoadFiles(f.configs, sets)
	if err != nil {
		return nil, &usageError{err}
	}
	return cfg, nil
}

func (f *runFlags) json() bool { return f.logFormat == "json" }

// noArgs rejects positional arguments for commands that take none.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(args, " "))
	}
	return nil
}

// checkRun refuses a --run that is empty (with the usage message missing)
// or not a valid run name.
func checkRun(run, missing string) error {
	if run == "" {
		return usagef("%s", missing)
	}
	if err := storage.ValidateRun(run); err != nil {
		return usagef("--run: %v", err)
	}
	return nil
}

// runName is the training run a command acts on: the --run flag's value,
// else run.name, else "train-" and configName.
func (f *runFlags) runName(flag string, cfg *config.Config) string {
	switch {
	case flag != "":
		return flag
	case cfg.Run.Name != "":
		return cfg.Run.Name
	}
	return "train-" + f.configName()
}

// configName names the configuration for a default run name: the last
// --config file's name without its extension (an overlay names what it
// changes), or "default" without one.
func (f *runFlags) configName() string {
	if len(f.configs) == 0 {
		return "default"
	}
	last := f.configs[len(f.configs)-1]
	return strings.TrimSuffix(filepath.Base(last), filepath.Ext(last))
}

// modelFlags name the model a command runs: a bundle or export directory
// (--model) or a committed checkpoint of a training run in the store
// (--run, --version).
type modelFlags struct {
	dir     string
	run     string
	version int
	fs      *pflag.FlagSet
}

// addModelFlags adds --model, --run and --version; to says what the
// command does with the model ("generate with", "serve").
func addModelFlags(fs *pflag.FlagSet, to string) *modelFlags {
	f := &modelFlags{fs: fs}
	fs.StringVar(&f.dir, "model", "", "bundle or export directory to "+to)
	fs.StringVar(&f.run, "run", "", "training run whose checkpoint to "+to+" (in the store)")
	fs.IntVar(&f.version, "version", -1, "with --run: checkpoint version (default: the last committed one)")
	return f
}

// open resolves the model the flags name (a --run in the store that rf
// configures) as modelDir or runCheckpoint does: its configuration, a
// loader of its bundle and a cleanup to call once loading is done. dirs
// says what --model accepts, for the error when no model is named.
func (f *modelFlags) open(ctx context.Context, rf *runFlags, dirs string) (*config.Config, func(gotch.Device) (*model.Bundle, error), func(), error) {
	switch {
	case f.dir != "" && f.run != "":
		return nil, nil, nil, usagef("--model and --run both name the model; give one")
	case f.dir != "":
		if f.fs.Changed("version") {
			return nil, nil, nil, usagef("--version goes with --run, not --model")
		}
		cfg, load, err := modelDir("--model", f.dir)
		return cfg, load, func() {}, err
	case f.run != "":
		cfg, err := rf.load()
		if err != nil {
			return nil, nil, nil, err
		}
		return runCheckpoint(ctx, cfg, f.run, f.version)
	default:
		return nil, nil, nil, usagef("give the model: --model DIR (%s) or --run RUN (a training run's checkpoint)", dirs)
	}
}

// samplingFlags override a model configuration's sampling section:
// --temperature and --top-p for the MLLM's writing, --steps and --cfg for
// the DiT's drawing.
type samplingFlags struct {
	temperature, topP float64
	steps             int
	cfg               float64
}

// addSamplingFlags adds the four flags; when says when the MLLM writes
// (appended to its flags' help, e.g. " before drawing").
func addSamplingFlags(fs *pflag.FlagSet, when string) *samplingFlags {
	f := &samplingFlags{}
	fs.Float64Var(&f.temperature, "temperature", 0, "MLLM sampling temperature"+when+" (0: greedy)")
	fs.Float64Var(&f.topP, "top-p", 1, "MLLM nucleus sampling mass"+when+" (with --temperature > 0)")
	fs.IntVar(&f.steps, "steps", 0, "DiT ODE steps (default: the model configuration's sampling.dit_steps)")
	fs.Float64Var(&f.cfg, "cfg", 0, "text guidance scale (default: the model configuration's sampling.cfg)")
	return f
}

// check refuses values out of range, naming the flag.
func (f *samplingFlags) check() error {
	switch {
	case f.temperature < 0:
		return fmt.Errorf("--temperature must not be negative, got %g", f.temperature)
	case f.topP <= 0 || f.topP > 1:
		return fmt.Errorf("--top-p must be in (0, 1], got %g", f.topP)
	case f.steps < 0:
		return fmt.Errorf("--steps must not be negative, got %d", f.steps)
	case f.cfg < 0:
		return fmt.Errorf("--cfg must not be negative, got %g", f.cfg)
	}
	return nil
}

// apply returns s with the flags' overrides: the temperature and top-p
// always, the steps and the guidance scale when set (> 0).
func (f *samplingFlags) apply(s config.Sampling) config.Sampling {
	s.Temperature, s.TopP = f.temperature, f.topP
	if f.steps > 0 {
		s.DiTSteps = f.steps
	}
	if f.cfg > 0 {
		s.CFG = f.cfg
	}
	return s
}
