package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/export"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// readExportManifest reads an export's manifest.
func readExportManifest(t *testing.T, dir string) *export.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, export.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m export.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// checkImportEquals imports the export in dir, saves the bundle again and
// checks that its files are those of bundleDir byte for byte: every tensor
// is bit-identical to the exported checkpoint's.
func checkImportEquals(t *testing.T, dir, bundleDir string, step int) {
	t.Helper()
	resaved := t.TempDir()
	err := libtorch.Run(func() error {
		b, _, err := export.Import(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		_, cfg, err := export.ReadManifest(dir)
		if err != nil {
			return err
		}
		return b.Save(resaved, step, cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.SameFiles(t, bundleDir, resaved, []string{"mllm.safetensors", "connector.safetensors", "dit.safetensors", "tokenizer.json"}, "the imported export differs from the checkpoint's")
}

// writeRunState writes a run.json for run into the local store at dir.
func writeRunState(t *testing.T, dir string, rs *runs.State) {
	t.Helper()
	data, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(runs.StateKey(rs.Run)))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExportCommand trains a two-step run, exports its last version and
// its base, imports both bit-identically, evaluates the export, refuses
// every bad input with exit 2 and nothing written, and exports the same
// run from an S3 store (MinIO) to the same files.
func TestExportCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	store, base := trainSmallRun(t)
	ctx := context.Background()
	st := openLocal(t, store)
	rs, err := runs.ReadState(ctx, st, "r")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Committed != 2 || !slices.Equal(rs.Kept, []int{0, 1, 2}) {
		t.Fatalf("run r: committed %d kept %v, want 2 and [0 1 2]", rs.Committed, rs.Kept)
	}
	// A run that has committed no step (as run.json is before the first
	// commit), and one whose kept version is gone from the store.
	fresh := *rs
	fresh.Run, fresh.Committed, fresh.PolicyVersion, fresh.Kept, fresh.Seeds = "fresh", 0, 0, []int{0}, nil
	writeRunState(t, store, &fresh)
	gone := *rs
	gone.Run = "gone"
	writeRunState(t, store, &gone)

	parent := t.TempDir()
	t.Run("exports the last version", func(t *testing.T) {
		out := filepath.Join(parent, "last")
		code, stdout, errs := runCLI(t, "export", "--run", "r", "--run-dir", store, "--out", out)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		if !strings.Contains(stdout, "exported run r version 2") {
			t.Errorf("stdout: %s", stdout)
		}
		m := readExportManifest(t, out)
		if m.Run != "r" || m.Version != 2 || m.Config != rs.Config {
			t.Errorf("manifest: run %q version %d, config equal to run.json's: %v", m.Run, m.Version, m.Config == rs.Config)
		}
		checkImportEquals(t, out, filepath.Join(versionDir(t, store, "r", 2), "bundle"), 2)
	})
	t.Run("exports the base", func(t *testing.T) {
		out := filepath.Join(parent, "base")
		if code, stdout, errs := runCLI(t, "export", "--run", "r", "--version", "0", "--run-dir", store, "--out", out); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		if m := readExportManifest(t, out); m.Version != 0 {
			t.Errorf("manifest version %d, want 0", m.Version)
		}
		checkImportEquals(t, out, base, 0)
	})
	t.Run("eval reads an export", func(t *testing.T) {
		code, stdout, errs := runCLI(t, "eval", "--model", filepath.Join(parent, "last"), "--rows", "2")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		if !strings.Contains(stdout, "held-out scores, out of distribution, eval split (2 rows") {
			t.Errorf("stdout: %s", stdout)
		}
	})

	t.Run("train starts from an export", func(t *testing.T) {
		exp := filepath.Join(parent, "last")
		runDir := t.TempDir()
		code, stdout, errs := runCLI(t, "train", "--config", filepath.Join("testdata", "small.yaml"), "--set", "run.base="+exp,
			"--run-dir", runDir, "--run", "r2", "--eval-rows", "0", "--stop-after", "1")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		// Version 0 of the new run is the exported checkpoint, weights bit for bit.
		checkImportEquals(t, exp, filepath.Join(versionDir(t, runDir, "r2", 0), "bundle"), 2)
		st2 := openLocal(t, runDir)
		rs, err := runs.ReadState(ctx, st2, "r2")
		if err != nil {
			t.Fatal(err)
		}
		if rs.Committed != 1 || !strings.Contains(rs.Config, "base: "+exp) {
			t.Errorf("run r2: committed %d, config records the export as its base: %v", rs.Committed, strings.Contains(rs.Config, "base: "+exp))
		}
	})
	t.Run("train refuses a damaged export", func(t *testing.T) {
		exp := filepath.Join(t.TempDir(), "damaged")
		if err := os.CopyFS(exp, os.DirFS(filepath.Join(parent, "last"))); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(exp, "transformer", "diffusion_pytorch_model.safetensors"), 100); err != nil {
			t.Fatal(err)
		}
		runDir := t.TempDir()
		code, _, errs := runCLI(t, "train", "--config", filepath.Join("testdata", "small.yaml"), "--set", "run.base="+exp,
			"--run-dir", runDir, "--eval-rows", "0")
		if code != 2 || !strings.Contains(errs, "run.base") || !strings.Contains(errs, "diffusion_pytorch_model.safetensors has size 100") {
			t.Errorf("exit %d, want 2 naming run.base and the damaged file; stderr:\n%s", code, errs)
		}
		if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
			t.Errorf("the refused run wrote %d entries into its store", len(entries))
		}
	})

	t.Run("train starts from a transformers folder", func(t *testing.T) {
		// The export's mllm/ is a Qwen3ForCausalLM folder: run.base
		// imports it as thinkgen import --mllm does, the connector and
		// DiT initialised from run.seed.
		hf := filepath.Join(parent, "last", "mllm")
		small := filepath.Join("testdata", "small.yaml")
		imported := filepath.Join(t.TempDir(), "imported")
		if code, stdout, errs := runCLI(t, "import", "--config", small, "--mllm", hf, "--out", imported); code != 0 {
			t.Fatalf("import: exit %d\n%s\n%s", code, stdout, errs)
		}
		runDir := t.TempDir()
		code, stdout, errs := runCLI(t, "train", "--config", small, "--set", "run.base="+hf,
			"--run-dir", runDir, "--run", "r3", "--eval-rows", "0", "--stop-after", "1")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		if !strings.Contains(errs, "imported run.base "+hf) || !strings.Contains(errs, "initialised from run.seed: connector, dit") {
			t.Errorf("train does not say what it imported and what it initialised; stderr:\n%s", errs)
		}
		testutil.SameFiles(t, filepath.Join(versionDir(t, runDir, "r3", 0), "bundle"), imported,
			[]string{"mllm.safetensors", "connector.safetensors", "dit.safetensors", "tokenizer.json"}, "run r3's base differs from thinkgen import's bundle")

		bad := filepath.Join(t.TempDir(), "mllm")
		if err := os.CopyFS(bad, os.DirFS(hf)); err != nil {
			t.Fatal(err)
		}
		editJSONFile(t, filepath.Join(bad, "config.json"), func(m map[string]any) { m["num_hidden_layers"] = 7 })
		runDir = t.TempDir()
		code, _, errs = runCLI(t, "train", "--config", small, "--set", "run.base="+bad, "--run-dir", runDir, "--eval-rows", "0")
		if code != 2 || !strings.Contains(errs, "run.base "+bad+" (a transformers folder)") || !strings.Contains(errs, "num_hidden_layers is 7") {
			t.Errorf("exit %d, want 2 naming run.base, config.json and the key; stderr:\n%s", code, errs)
		}
		if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
			t.Errorf("the refused run wrote %d entries into its store", len(entries))
		}
	})

	full := filepath.Join(t.TempDir(), "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		args []string
		want []string
	}{
		{"no run", []string{"--run", "nosuch"}, []string{"--run", "no run.json"}},
		{"no committed step", []string{"--run", "fresh"}, []string{"--run", "run fresh has committed no step", "--version 0"}},
		{"unknown version", []string{"--run", "r", "--version", "7"}, []string{"no checkpoint version 7 (kept: 0, 1, 2)"}},
		{"version gone from the store", []string{"--run", "gone"}, []string{"checkpoint version 2 is not committed"}},
		{"negative version", []string{"--run", "r", "--version", "-2"}, []string{"--version must be ≥ 0"}},
		{"other format", []string{"--run", "r", "--format", "onnx"}, []string{`--format "onnx"`}},
		{"unknown dtype", []string{"--run", "r", "--dtype", "fp8"}, []string{"--dtype", `"fp8"`, "bfloat16"}},
		{"run and model", []string{"--run", "r", "--model", base}, []string{"one of --run and --model"}},
		{"bad run name", []string{"--run", "a/b"}, []string{"--run"}},
		{"not a bundle", []string{"--model", t.TempDir()}, []string{"--model"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			args := append([]string{"export", "--run-dir", store, "--out", out}, tt.args...)
			runRefused(t, tt.want, args...)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the refused export wrote %d entries", len(entries))
			}
		})
	}
	t.Run("non-empty out", func(t *testing.T) {
		code, _, errs := runCLI(t, "export", "--run", "r", "--run-dir", store, "--out", full)
		if code != 2 || !strings.Contains(errs, "--out") || !strings.Contains(errs, "not empty") {
			t.Errorf("exit %d, stderr %s", code, errs)
		}
		if entries, _ := os.ReadDir(full); len(entries) != 1 {
			t.Errorf("the non-empty out dir now holds %d entries", len(entries))
		}
	})
	t.Run("missing out", func(t *testing.T) {
		if code, _, errs := runCLI(t, "export", "--run", "r", "--run-dir", store); code != 2 || !strings.Contains(errs, "--out is required") {
			t.Errorf("exit %d, stderr %s", code, errs)
		}
	})

	t.Run("from S3", func(t *testing.T) {
		bucket := storagetest.BucketName(t)
		scfg, ok := storagetest.Config(t, bucket)
		if !ok {
			storagetest.MinIO(t) // skips, or fails under CI
			return
		}
		s3 := storagetest.NewBucketStore(t, scfg)
		// The run's objects, as a run on S3 holds them.
		objs, err := st.List(ctx, storage.RunPrefix("r"))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			rc, err := st.Get(ctx, o.Key)
			if err != nil {
				t.Fatal(err)
			}
			data, err := readAllClose(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := s3.Put(ctx, o.Key, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}
		out := filepath.Join(t.TempDir(), "s3")
		code, stdout, errs := runCLI(t, "export", "--run", "r", "--out", out, "--store", scfg.URI, "--set", "storage.endpoint="+scfg.Endpoint,
			"--set", "storage.insecure=true", "--set", "storage.region="+scfg.Region, "--set", "storage.credentials_file="+scfg.CredentialsFile)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
		}
		got, want := readExportManifest(t, out), readExportManifest(t, filepath.Join(parent, "last"))
		if !slices.Equal(got.Files, want.Files) || got.Version != 2 || !strings.HasPrefix(got.Source, "s3://"+bucket) {
			t.Errorf("export from S3: version %d source %q; files equal to the local export's: %v", got.Version, got.Source, slices.Equal(got.Files, want.Files))
		}
	})
}

func readAllClose(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}

// editJSONFile rewrites the JSON object in the file at path with edit.
func editJSONFile(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var m map[string]any
	readJSON(t, path, &m)
	edit(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
