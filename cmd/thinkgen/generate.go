package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // --edit accepts JPEG as well as PNG
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"
	xdraw "golang.org/x/image/draw"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

func generateCommand() *command {
	return &command{
		name:  "generate",
		usage: `(--model DIR | --run RUN [--version N]) [--edit IMAGE] [--think=false] [--num N] [--out DIR] "PROMPT"... | --file FILE`,
		short: "think, then draw (or edit) images from prompts with a bundle or a run's checkpoint",
		long: `Generate runs the think-then-generate pipeline on the given prompts: the
MLLM writes (in thinking mode a chain of thought in <think>…</think>, then
the instruction), its instruction states condition the DiT, which draws
the image — or, with --edit, edits the given image. For every prompt it
prints the chain of thought and the instruction and writes the image(s)
as PNG into --out (<n>.png, or <n>-<k>.png with --num above 1, numbered
from 1 in prompt order) next to <n>.txt holding what the MLLM wrote.

The model is a bundle directory (--model: base/tiny, a pretrain stage's
final/, a fetched checkpoint), an export (thinkgen export's folder) or a committed checkpoint of a training run
in the store (--run, with --store/--run-dir; --version defaults to the
run's last committed version). Prompts come from the arguments or from
--file (one per line; blank lines and lines starting with # are skipped;
- reads standard input).

Decoding is greedy unless --temperature is above 0; every image k of
prompt n draws its noise (and sampled tokens) from --seed, so the same
command gives the same images. An --edit image of another size than the
model's is resized to it (bilinear). Everything is checked before the
model is loaded: a missing or corrupt image, an empty prompt, an unknown
run or version is an error (exit 2) and nothing is written.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			mf := addModelFlags(fs, "generate with")
			edit := fs.String("edit", "", "image (PNG or JPEG) to edit: the prompts are edit instructions")
			think := fs.Bool("think", true, "thinking mode (a chain of thought before the instruction); --think=false: direct mode")
			num := fs.Int("num", 1, "images per prompt (each its own noise)")
			out := fs.String("out", "generated", "directory the PNGs (and what the MLLM wrote) are written to")
			file := fs.String("file", "", "read prompts from this file, one per line (- for standard input)")
			sf := addSamplingFlags(fs, "")
			asJSON := fs.Bool("json", false, "print one JSON object per image instead of text")
			return func(ctx context.Context, args []string) error {
				req := generateRequest{
					think: *think, num: *num, out: *out, sampling: sf,
					json: *asJSON, seed: rf.seed, seedSet: fs.Changed("seed"),
				}
				var err error
				if req.prompts, err = readPrompts(args, *file, e.stdin); err != nil {
					return &usageError{err}
				}
				if *edit != "" {
					if req.edit, err = os.ReadFile(*edit); err != nil {
						return usagef("--edit: %v", err)
					}
					req.editName = *edit
				}
				if err := req.check(); err != nil {
					return &usageError{err}
				}
				cfg, load, cleanup, err := mf.open(ctx, rf, "a bundle")
				if err != nil {
					return err
				}
				defer cleanup()
				return generate(ctx, e, cfg, &req, func() (*model.Bundle, error) { return placed(cfg, load) })
			}
		},
	}
}

// generateRequest is what one generate command asks for.
type generateRequest struct {
	prompts  []string
	edit     []byte // the --edit image file's bytes
	editName string
	think    bool
	num      int
	out      string
	sampling *samplingFlags
	json     bool
	seed     int64
	seedSet  bool
}

// check validates the request before any model is loaded.
func (r *generateRequest) check() error {
	if len(r.prompts) == 0 {
		return fmt.Errorf("no prompt: give one or more as arguments, or --file")
	}
	for i, p := range r.prompts {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("prompt %d is empty", i+1)
		}
	}
	if r.num < 1 {
		return fmt.Errorf("--num must be at least 1, got %d", r.num)
	}
	if err := r.sampling.check(); err != nil {
		return err
	}
	if r.out == "" {
		return fmt.Errorf("--out is empty")
	}
	if r.edit != nil {
		if _, _, err := image.Decode(bytes.NewReader(r.edit)); err != nil {
			return fmt.Errorf("--edit %s: not a PNG or JPEG image: %w", r.editName, err)
		}
	}
	if st, err := os.Stat(r.out); err == nil && !st.IsDir() {
		return fmt.Errorf("--out %s: exists and is not a directory", r.out)
	}
	return nil
}

// readPrompts returns the prompts of the arguments, or of file (one per
// line) when it is set.
func readPrompts(args []string, file string, stdin io.Reader) ([]string, error) {
	if file == "" {
		return args, nil
	}
	if len(args) > 0 {
		return nil, fmt.Errorf("prompts come from --file %s or from the arguments, not both", file)
	}
	r := stdin
	if r == nil {
		r = strings.NewReader("")
	}
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		defer f.Close()
		r = f
	}
	var prompts []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		prompts = append(prompts, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--file %s: %w", file, err)
	}
	if len(prompts) == 0 {
		return nil, fmt.Errorf("--file %s: no prompts in it", file)
	}
	return prompts, nil
}

// runCheckpoint resolves a committed checkpoint of a training run in the
// store of cfg (version < 0: the last committed one) and returns the
// run's configuration with a loader of the checkpoint's bundle (call it
// inside libtorch.Run; the caller drops the bundle) and a cleanup that
// removes the loader's download cache, to call once loading is done. An
// unknown run or version is a usage error.
func runCheckpoint(ctx context.Context, cfg *config.Config, run string, version int) (*config.Config, func(gotch.Device) (*model.Bundle, error), func(), error) {
	if err := storage.ValidateRun(run); err != nil {
		return nil, nil, nil, &usageError{fmt.Errorf("--run: %w", err)}
	}
	st, err := openExistingStore(ctx, cfg.Storage)
	if err != nil {
		return nil, nil, nil, err
	}
	rs, err := runs.ReadState(ctx, st, run)
	if err != nil {
		return nil, nil, nil, &usageError{fmt.Errorf("--run %s in %s: %w", run, st, err)}
	}
	if version < 0 {
		if rs.Committed == 0 {
			return nil, nil, nil, usagef("--run %s: no committed step yet (nothing to generate with but its base %s)", run, cfg.Run.Base)
		}
		version = rs.Committed
	}
	kept := false
	for _, v := range rs.Kept {
		kept = kept || v == version
	}
	if !kept {
		return nil, nil, nil, usagef("--version %d: run %s keeps checkpoint versions %v", version, run, rs.Kept)
	}
	runCfg, err := rs.ParseConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	cache, err := os.MkdirTemp("", "thinkgen-checkpoint-")
	if err != nil {
		return nil, nil, nil, err
	}
	load := func(dev gotch.Device) (*model.Bundle, error) {
		b, _, err := checkpoint.Load(ctx, st, run, version, cache, dev)
		if err != nil {
			return nil, fmt.Errorf("run %s version %d: %w", run, version, err)
		}
		return b, nil
	}
	return runCfg, load, func() { os.RemoveAll(cache) }, nil
}

// generatedImage is one line of generate's JSON output.
type generatedImage struct {
	Prompt      string `json:"prompt"`
	Mode        string `json:"mode"`
	Seed        uint64 `json:"seed"`
	Thought     string `json:"thought,omitempty"`
	Instruction string `json:"instruction"`
	Image       string `json:"image"`
}

// generate loads the model with load and runs the pipeline on req.
func generate(ctx context.Context, e *env, cfg *config.Config, req *generateRequest, load func() (*model.Bundle, error)) error {
	size := cfg.Model.DiT.ImageSize
	var ref []byte
	if req.edit != nil {
		var err error
		if ref, err = fitImage(req.edit, size); err != nil {
			return &usageError{fmt.Errorf("--edit %s: %w", req.editName, err)}
		}
	}
	s := req.sampling.apply(cfg.Sampling)
	seed := uint64(cfg.Run.Seed)
	if req.seedSet {
		seed = uint64(req.seed)
	}
	// Row n*num+k is image k of prompt n; Generate seeds it seed+(n*num+k).
	var rows []datasets.Row
	for n, p := range req.prompts {
		for k := 0; k < req.num; k++ {
			rows = append(rows, datasets.Row{ID: imageName(n, k, req.num), Prompt: p, Reference: ref})
		}
	}
	var samples []evaluate.Sample
	err := libtorch.Run(func() error {
		if th := cfg.Run.Threads; th > 0 {
			if err := libtorch.SetThreads(th); err != nil {
				return err
			}
		}
		b, err := load()
		if err != nil {
			return err
		}
		defer b.Drop()
		const chunk = 16
		for i := 0; i < len(rows); i += chunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			part := rows[i:min(i+chunk, len(rows))]
			got, err := evaluate.Generate(b, part, req.think, s, seed+uint64(i), b.MLLM.P.Device())
			if err != nil {
				return err
			}
			samples = append(samples, got...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := os.MkdirAll(req.out, 0o755); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	mode := "think"
	if !req.think {
		mode = "direct"
	}
	for i, smp := range samples {
		name := filepath.Join(req.out, smp.Row.ID)
		var buf bytes.Buffer
		if err := png.Encode(&buf, smp.Image); err != nil {
			return fmt.Errorf("generate: encode %s.png: %w", name, err)
		}
		if err := writeFile(name+".png", buf.Bytes()); err != nil {
			return err
		}
		if err := writeFile(name+".txt", []byte(smp.Written+"\n")); err != nil {
			return err
		}
		if req.json {
			line, err := json.Marshal(generatedImage{Prompt: smp.Row.Prompt, Mode: mode, Seed: seed + uint64(i), Thought: smp.Thought, Instruction: smp.Instruction, Image: name + ".png"})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s\n", line)
			continue
		}
		fmt.Fprintf(e.stdout, "prompt:      %s\n", smp.Row.Prompt)
		if req.think {
			fmt.Fprintf(e.stdout, "thought:     %s\n", smp.Thought)
		}
		fmt.Fprintf(e.stdout, "instruction: %s\nimage:       %s.png\n\n", smp.Instruction, name)
	}
	return nil
}

// imageName is the file name (without extension) of image k of prompt n.
func imageName(n, k, num int) string {
	if num == 1 {
		return fmt.Sprintf("%d", n+1)
	}
	return fmt.Sprintf("%d-%d", n+1, k+1)
}

// fitImage decodes an image and returns it as a size×size PNG, resized
// (bilinear) when it has another size.
func fitImage(data []byte, size int) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	if b := img.Bounds(); b.Dx() == size && b.Dy() == size {
		xdraw.Draw(dst, dst.Bounds(), img, b.Min, xdraw.Src)
	} else {
		xdraw.BiLinear.Scale(dst, dst.Bounds(), img, b, xdraw.Src, nil)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, dst); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFile writes data to path atomically (writeFileAtomic).
func writeFile(path string, data []byte) error {
	_, err := writeFileAtomic(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	return err
}
