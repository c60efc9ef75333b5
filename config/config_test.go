package config

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/internal/testutil"
)

func TestShippedConfigsValidate(t *testing.T) {
	for _, name := range []string{"tiny.yaml", "full.yaml"} {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(filepath.Join("..", "configs", name), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLoadFilesOverlays checks that later files override earlier ones
// key by key: an overlay's struct merges with what is below it, its map
// replaces the map below, and a bad overlay is refused naming its file,
// line or key.
func TestLoadFilesOverlays(t *testing.T) {
	tiny := filepath.Join("..", "configs", "tiny.yaml")
	vl, err := LoadFiles([]string{tiny, filepath.Join("..", "configs", "tiny-vl.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Load(tiny, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !vl.Model.MLLM.IsQwen3VL() || vl.Model.MLLM.ViT.Depth != 4 || !slices.Equal(vl.Model.MLLM.MRopeSection, []int{6, 5, 5}) {
		t.Errorf("tiny + tiny-vl: vision %q, vit depth %d, mrope %v; want qwen3vl, 4, [6 5 5]", vl.Model.MLLM.Vision, vl.Model.MLLM.ViT.Depth, vl.Model.MLLM.MRopeSection)
	}
	if vl.Model.DiT != base.Model.DiT || vl.Model.MLLM.Hidden != base.Model.MLLM.Hidden || !maps.Equal(vl.GRPO.Mix, base.GRPO.Mix) || vl.Run != base.Run {
		t.Errorf("tiny + tiny-vl changed keys the overlay does not name: dit %+v (tiny %+v), mllm.hidden %d, grpo.mix %v, run %+v",
			vl.Model.DiT, base.Model.DiT, vl.Model.MLLM.Hidden, vl.GRPO.Mix, vl.Run)
	}
	mix, err := LoadFiles([]string{tiny, filepath.Join("testdata", "overlay_mix.yaml")}, []string{"grpo.lr=1e-4"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]float64{"text": 2}; !maps.Equal(mix.GRPO.Mix, want) || mix.GRPO.Group != 4 || mix.GRPO.PromptsPerStep != base.GRPO.PromptsPerStep || mix.GRPO.LR != 1e-4 {
		t.Errorf("overlay grpo = mix %v group %d prompts %d lr %g; want mix %v, group 4, tiny's prompts %d, lr 1e-4 from --set",
			mix.GRPO.Mix, mix.GRPO.Group, mix.GRPO.PromptsPerStep, mix.GRPO.LR, want, base.GRPO.PromptsPerStep)
	}
	for _, tt := range []struct {
		overlay string
		want    []string
	}{
		{"overlay_unknown.yaml", []string{"overlay_unknown.yaml:3", `unknown key "model.mllm.vison"`}},
		{"overlay_bad_mrope.yaml", []string{"tiny-vl.yaml + testdata/overlay_bad_mrope.yaml", "model.mllm.mrope_section", "(got [6 5 6])"}},
	} {
		t.Run(tt.overlay, func(t *testing.T) {
			_, err := LoadFiles([]string{tiny, filepath.Join("..", "configs", "tiny-vl.yaml"), filepath.Join("testdata", tt.overlay)}, nil)
			if err == nil {
				t.Fatal("LoadFiles succeeded, want an error")
			}
			testutil.Mentions(t, "error", err.Error(), tt.want)
		})
	}
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFullConfigShapes(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "configs", "full.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Model.DiT
	if d.Hidden/d.Heads != 120 || d.Layers != 32 || d.KVHeads != 7 || d.FFN != 10240 {
		t.Errorf("full DiT shape = %+v, want OmniGen2's (head dim 120, 32 layers, 7 KV heads, FFN 10240)", d)
	}
	if cfg.Model.Connector.Prepad != 23 {
		t.Errorf("full connector prepad = %d, want 23", cfg.Model.Connector.Prepad)
	}
	m := cfg.Model.MLLM
	want := ViT{Depth: 27, Hidden: 1152, Heads: 16, FFN: 4304, TemporalPatch: 2, SpatialMerge: 2, PositionEmbeddings: 2304, DeepStack: []int{8, 16, 24}}
	if !m.IsQwen3VL() || !reflect.DeepEqual(m.ViT, want) || !slices.Equal(m.MRopeSection, []int{24, 20, 20}) || m.VisionPatch != 16 {
		t.Errorf("full MLLM vision = %q %+v mrope %v patch %d, want Qwen3-VL-8B's (qwen3vl %+v, mrope [24 20 20], patch 16)", m.Vision, m.ViT, m.MRopeSection, m.VisionPatch, want)
	}
}

// TestQwen3VLKeysRefused checks that the Qwen3-VL tower's keys are checked
// (on configs/full.yaml, which selects it): each bad value is named alone.
func TestQwen3VLKeysRefused(t *testing.T) {
	for _, tt := range []struct{ set, key string }{
		{"model.mllm.vision=clip", "model.mllm.vision"},
		{"model.mllm.vit.deepstack=[8, 8]", "model.mllm.vit.deepstack.1"},
		{"model.mllm.vit.deepstack=[27]", "model.mllm.vit.deepstack.0"},
		{"model.mllm.mrope_section=[24, 20]", "model.mllm.mrope_section"},
		{"model.mllm.mrope_section=[24, 20, 21]", "model.mllm.mrope_section"},
		{"model.mllm.vit.position_embeddings=2300", "model.mllm.vit.position_embeddings"},
		{"model.mllm.vit.hidden=1160", "model.mllm.vit.hidden"},
		{"model.mllm.vit.spatial_merge=0", "model.mllm.vit.spatial_merge"},
		{"model.dit.image_size=1008", "model.dit.image_size"},
	} {
		t.Run(tt.set, func(t *testing.T) {
			_, err := Load(filepath.Join("..", "configs", "full.yaml"), []string{tt.set})
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("--set %s: error %v, want a *ValidationError", tt.set, err)
			}
			if len(verr.Fields) != 1 || verr.Fields[0].Key != tt.key {
				t.Fatalf("--set %s: fields %v, want exactly %s", tt.set, verr, tt.key)
			}
		})
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		set  string
		key  string
		want string
	}{
		{"optim.lr=1e-4", "optim.lr", "0.0001"},
		{"run.seed=42", "run.seed", "42"},
		{"model.dit.layers=6", "model.dit.layers", "6"},
		{"reward.weights.text=2.5", "reward.weights.text", "2.5"},
		{"reward.remote.text=http://127.0.0.1:9000/score", "reward.remote.text", "http://127.0.0.1:9000/score"},
		{"schedule.phases.1.steps=7", "schedule.phases.1.steps", "7"},
		{"schedule.phases=[{phase: dit-grpo, steps: 3}]", "schedule.phases.0.phase", "dit-grpo"},
		{"cluster.lease_timeout=45s", "cluster.lease_timeout", "45s"},
		{"storage.uri=s3://bucket/prefix", "storage.uri", "s3://bucket/prefix"},
		{"sampling.time_shift=false", "sampling.time_shift", "false"},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			cfg, err := Load(filepath.Join("..", "configs", "tiny.yaml"), []string{tt.set})
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.Get(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("after --set %s, %s = %q, want %q", tt.set, tt.key, got, tt.want)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		set     string
		wantErr []string
	}{
		{"nosuch.key=1", []string{`unknown key "nosuch"`}},
		{"optim.momentum=0.9", []string{`unknown key "optim.momentum"`, "lr"}},
		{"optim.lr.x=1", []string{`unknown key "optim.lr.x"`}},
		{"schedule.phases.9.steps=1", []string{`"schedule.phases.9"`, "2 entries"}},
		{"model.dit.layers=four", []string{"model.dit.layers=four", "int"}},
		{"optim.lr", []string{"want key=value"}},
		{"=3", []string{"want key=value"}},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			_, err := Load("", []string{tt.set})
			if err == nil {
				t.Fatalf("--set %s succeeded, want an error", tt.set)
			}
			testutil.Mentions(t, "error", err.Error(), tt.wantErr)
		})
	}
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		file    string
		wantErr []string
	}{
		{"unknown_key.yaml", []string{"unknown_key.yaml:5", `unknown key "optim.momentum"`}},
		{"wrong_type.yaml", []string{"wrong_type.yaml", "line 3", "four"}},
		{"bad_values.yaml", []string{"bad_values.yaml", "run.device", "optim.lr: must be > 0 (got -1)", "grpo.group", "schedule.phases.0.phase"}},
		{"does_not_exist.yaml", []string{"does_not_exist.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file), nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			testutil.Mentions(t, "error", err.Error(), tt.wantErr)
		})
	}
}

func TestValidateNamesEveryBadField(t *testing.T) {
	tests := []struct {
		set string
		key string
	}{
		{"run.device=gpu", "run.device"},
		{"run.threads=-1", "run.threads"},
		{"sampling.decode_threads=-1", "sampling.decode_threads"},
		{"eval.scenarios=[reasoning, poetry]", "eval.scenarios"},
		{"eval.scenarios=[reasoning, reasoning]", "eval.scenarios"},
		{"eval.modes=[think, sketch]", "eval.modes"},
		{"eval.splits=[eval, train]", "eval.splits"},
		{"model.dtype=int8", "model.dtype"},
		{"model.mllm.kv_heads=3", "model.mllm.kv_heads"},
		{"model.mllm.layers=1", "model.mllm.layers"},
		{"model.dit.hidden=130", "model.dit.hidden"},
		{"model.dit.image_size=30", "model.dit.image_size"},
		{"model.dit.latent=jpeg", "model.dit.latent"},
		{"data.mix.poetry=1", "data.mix.poetry"},
		{"grpo.eps_low=1.5", "grpo.eps_low"},
		{"grpo.top_p=0", "grpo.top_p"},
		{"grpo.clip_ratio_c=1", "grpo.clip_ratio_c"},
		{"grpo.proximal=latest", "grpo.proximal"},
		{"grpo.behaviour_weight_cap=0.5", "grpo.behaviour_weight_cap"},
		{"flow_grpo.clip_ratio_c=0.5", "flow_grpo.clip_ratio_c"},
		{"grpo.mini_batches=3", "grpo.mini_batches"},
		{"flow_grpo.steps=50", "flow_grpo.steps"},
		{"flow_grpo.clip_eps=0", "flow_grpo.clip_eps"},
		{"flow_grpo.sde_window=-1", "flow_grpo.sde_window"},
		{"flow_grpo.objective=ppo", "flow_grpo.objective"},
		{"flow_grpo.sde_window=11", "flow_grpo.sde_window"},
		{"flow_grpo.sde_window_range=[0, 5, 9]", "flow_grpo.sde_window_range"},
		{"flow_grpo.sde_window_range=[0, 11]", "flow_grpo.sde_window_range"},
		{"flow_grpo.sde_window_range=[5, 5]", "flow_grpo.sde_window_range"},
		{"flow_grpo.sde_window_range=[-1, 3]", "flow_grpo.sde_window_range"},
		{"grpo.warmup_steps=-1", "grpo.warmup_steps"},
		{"grpo.decay=linear", "grpo.decay"},
		{"flow_grpo.warmup_steps=-2", "flow_grpo.warmup_steps"},
		{"flow_grpo.decay=step", "flow_grpo.decay"},
		{"optim.beta2=1", "optim.beta2"},
		{"optim.zero=3", "optim.zero"},
		{"reward.remote.text=ftp://x", "reward.remote.text"},
		{"reward.instruction=1.5", "reward.instruction"},
		{"reward.instruction=-0.1", "reward.instruction"},
		{"storage.uri=gs://bucket", "storage.uri"},
		{"storage.compression=gzip", "storage.compression"},
		{"cluster.workers.learner=-1", "cluster.workers.learner"},
		{"cluster.collective_timeout=0s", "cluster.collective_timeout"},
		{"cluster.ray=127.0.0.1:8265", "cluster.ray"},
		{"cluster.rollout.memory=80GB", "cluster.rollout.memory"},
		{"cluster.reward.memory=-1Gi", "cluster.reward.memory"},
		{"cluster.learner.custom.gpu=1", "cluster.learner.custom.gpu"},
		{"cluster.rollout.custom.a100=-1", "cluster.rollout.custom.a100"},
		{"cluster.head.memory=lots", "cluster.head.memory"},
		{"cluster.shm_size=-1Gi", "cluster.shm_size"},
		{"cluster.rollout.shm_size=16GB", "cluster.rollout.shm_size"},
		{"cluster.learner.node_selector={\"gpu pool\": a100}", "cluster.learner.node_selector"},
		{"cluster.learner.node_selector={pool: \"a 100\"}", "cluster.learner.node_selector.pool"},
		{"cluster.rollout.tolerations=[{key: nvidia.com/gpu, operator: In}]", "cluster.rollout.tolerations[0].operator"},
		{"cluster.rollout.tolerations=[{key: nvidia.com/gpu, operator: Exists, value: x}]", "cluster.rollout.tolerations[0].value"},
		{"cluster.rollout.tolerations=[{value: x}]", "cluster.rollout.tolerations[0].key"},
		{"cluster.reward.tolerations=[{operator: Exists, effect: NoRun}]", "cluster.reward.tolerations[0].effect"},
		{"cluster.learner.gpu_products=[\"A100 80GB\"]", "cluster.learner.gpu_products[0]"},
		{"cluster.learner.gpu_memory_mib=-1", "cluster.learner.gpu_memory_mib"},
		{"cluster.head.priority_class=High", "cluster.head.priority_class"},
		{"cluster.secret=My_Secret", "cluster.secret"},
		{"cluster.service_account=-sa", "cluster.service_account"},
		{"cluster.namespace=a.b", "cluster.namespace"},
		{"schedule.cycles=0", "schedule.cycles"},
		{"pretrain.finetune.condition=captions", "pretrain.finetune.condition"},
		{"pretrain.warmup.facts=1", "pretrain.warmup.facts"},
		{"pretrain.warmup.facts=-0.1", "pretrain.warmup.facts"},
		{"pretrain.dit.facts=0.2", "pretrain.dit.facts"},
		{"pretrain.vae={steps: 5, batch: 2}", "pretrain.vae.steps"},
		{"tracking.mlflow=127.0.0.1:5000", "tracking.mlflow"},
		{"tracking.mlflow=file:///tmp/mlruns", "tracking.mlflow"},
		{`tracking.experiment=""`, "tracking.experiment"},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			_, err := Load("", []string{tt.set})
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("--set %s: error %v, want a *ValidationError", tt.set, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
			if len(verr.Fields) != 1 || verr.Fields[0].Key != tt.key {
				t.Fatalf("--set %s: fields %v, want exactly %s", tt.set, verr, tt.key)
			}
		})
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	for _, name := range []string{"tiny.yaml", "full.yaml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(filepath.Join("..", "configs", name), []string{"reward.remote.text=http://127.0.0.1:1/x"})
			if err != nil {
				t.Fatal(err)
			}
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse("printed", out)
			if err != nil {
				t.Fatalf("printed config does not parse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(cfg, back) {
				t.Fatalf("round trip changed the config:\n%s", out)
			}
		})
	}
}

func TestScheduleTotalSteps(t *testing.T) {
	s := Schedule{Phases: []PhaseSpec{{PhaseMLLMGRPO, 3}, {PhaseDiTGRPO, 2}}, Cycles: 4}
	if got := s.TotalSteps(); got != 20 {
		t.Fatalf("TotalSteps = %d, want 20", got)
	}
}

func TestAllPhasesComplete(t *testing.T) {
	for _, p := range []Phase{PhaseMLLMGRPO, PhaseDiTGRPO} {
		if !p.Valid() {
			t.Errorf("%s is not in AllPhases", p)
		}
	}
	if Phase("sft").Valid() {
		t.Error(`Phase("sft").Valid() = true`)
	}
}

var memoryBytesTests = []struct {
	in   string
	want int64
	ok   bool
}{
	{"", 0, true},
	{"1000000", 1000000, true},
	{"512Mi", 512 << 20, true},
	{"80Gi", 80 << 30, true},
	{"1.5Gi", 3 << 29, true},
	{"2k", 2000, true},
	{"16G", 16e9, true},
	{"1Ti", 1 << 40, true},
	{"0.5", 1, true}, // rounded up to a whole byte
	{"80GB", 0, false},
	{"1ki", 0, false},
	{"-1Gi", 0, false},
	{"Gi", 0, false},
	{"1e9", 0, false},
	{"9Ei", 0, false},
}

func TestMemoryBytes(t *testing.T) {
	for _, tt := range memoryBytesTests {
		got, err := Resources{Memory: tt.in}.MemoryBytes()
		if (err == nil) != tt.ok {
			t.Errorf("MemoryBytes(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
			t.Errorf("MemoryBytes(%q) error %q does not name the value", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("MemoryBytes(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestClusterCustomResourcesSet(t *testing.T) {
	cfg, err := Load("", []string{"cluster.rollout.custom.accelerator_type:A100=1", "cluster.rollout.memory=80Gi"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Cluster.Rollout.Custom["accelerator_type:A100"]; got != 1 {
		t.Errorf("cluster.rollout.custom[accelerator_type:A100] = %v, want 1", got)
	}
	if b, _ := cfg.Cluster.Rollout.MemoryBytes(); b != 80<<30 {
		t.Errorf("cluster.rollout.memory = %d bytes, want %d", b, int64(80<<30))
	}
}

func TestShapeDiff(t *testing.T) {
	base := Default().Model
	tests := []struct {
		name   string
		change func(m *Model)
		want   []string
	}{
		{"same", func(m *Model) {}, nil},
		{"dtype only", func(m *Model) { m.DType = "bfloat16" }, nil},
		{"connector.states only (no weight changes)", func(m *Model) { m.Connector.States = StatesAll }, nil},
		{"prepad", func(m *Model) { m.Connector.Prepad = 0 }, []string{fmt.Sprintf("connector.prepad %d vs 0", base.Connector.Prepad)}},
		{"vit keys of the patch embedder (unused)", func(m *Model) { m.MLLM.ViT.DeepStack = []int{1}; m.MLLM.Vision = VisionPatch }, nil},
		{"qwen3vl tower", func(m *Model) {
			m.MLLM.Vision, m.MLLM.ViT.DeepStack, m.MLLM.MRopeSection = VisionQwen3VL, []int{1}, []int{}
		}, []string{"mllm.vision patch vs qwen3vl"}},
		{"two keys", func(m *Model) { m.MLLM.Layers++; m.DiT.Hidden *= 2 }, []string{
			fmt.Sprintf("mllm.layers %d vs %d", base.MLLM.Layers, base.MLLM.Layers+1),
			fmt.Sprintf("dit.hidden %d vs %d", base.DiT.Hidden, base.DiT.Hidden*2),
		}},
	}
	for _, tt := range tests {
		o := base
		tt.change(&o)
		got := base.ShapeDiff(o)
		if !slices.Equal(got, tt.want) || base.SameShape(o) != (len(tt.want) == 0) {
			t.Errorf("%s: ShapeDiff = %q (SameShape %v), want %q", tt.name, got, base.SameShape(o), tt.want)
		}
	}
}

// TestSetReplacesMapsAndUpdatesStructs: a map given whole replaces the map
// (a mix is exactly the one written), a struct given whole updates only the
// fields it names.
func TestSetReplacesMapsAndUpdatesStructs(t *testing.T) {
	c := Default()
	for _, kv := range []string{"grpo.mix.composition=1", "grpo.mix={reasoning: 3}", "pretrain.warmup.batch=7", "pretrain.warmup={steps: 5}"} {
		if err := c.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	if want := map[string]float64{"reasoning": 3}; !maps.Equal(c.GRPO.Mix, want) {
		t.Errorf("grpo.mix = %v, want %v", c.GRPO.Mix, want)
	}
	if w := c.Pretrain.Warmup; w.Steps != 5 || w.Batch != 7 {
		t.Errorf("pretrain.warmup = %+v, want steps 5 and the batch 7 set before", w)
	}
}

// TestVAELatentKeys checks model.vae against model.dit for latent: vae:
// a width the norm groups do not divide and a downsampling factor that is
// not a power of two are refused by name; a consistent section passes.
func TestVAELatentKeys(t *testing.T) {
	vae := []string{"model.dit.latent=vae", "model.dit.channels=4", "model.dit.patch=2"}
	tests := []struct {
		sets []string
		key  string // "" for valid
	}{
		{[]string{"model.dit.vae_scale=4", "model.vae={width: 8, layers_per_block: 1, norm_groups: 4}"}, ""},
		{[]string{"model.dit.vae_scale=4", "model.vae={width: 6, layers_per_block: 1, norm_groups: 4}"}, "model.vae.width"},
		{[]string{"model.dit.vae_scale=8", "model.vae={width: 8, layers_per_block: 0, norm_groups: 4}"}, "model.vae.layers_per_block"},
		{[]string{"model.dit.vae_scale=2", "model.dit.image_size=48", "model.dit.patch=3", "model.vae={width: 8, layers_per_block: 1, norm_groups: 4}"}, ""},
		{[]string{"model.dit.vae_scale=3", "model.dit.image_size=36", "model.dit.patch=2", "model.vae={width: 8, layers_per_block: 1, norm_groups: 4}"}, "model.dit.vae_scale"},
	}
	for _, tt := range tests {
		_, err := Load("", append(append([]string{}, vae...), tt.sets...))
		if tt.key == "" {
			if err != nil {
				t.Errorf("%v: %v", tt.sets, err)
			}
			continue
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Fields) != 1 || verr.Fields[0].Key != tt.key {
			t.Errorf("%v: error %v, want exactly %s", tt.sets, err, tt.key)
		}
	}
}
