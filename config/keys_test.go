package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// keyEvidence is how a leaf key of Config is shown not to be inert: file
// (relative to the repository root, outside package config, not a test)
// reads it through the selector sel (".sel" followed by a word boundary:
// "Run.EvalEvery", or the last field name when the code reads it off a
// copy of its section), or a value refused by Validate naming the key.
// Keys made real by behaviour tests elsewhere: grpo/flow_grpo.warmup_steps
// and .decay (learner/lr_test.go), run.eval_every
// (orchestrator/testdata/eval.txt), data.eval_size
// (cmd/thinkgen/train_test.go, pretrain/pretrain_test.go), data.dataset
// (TestTrainOnADataset in cmd/thinkgen/train_test.go).
type keyEvidence struct {
	file, sel string
	refused   string
}

// keyReaders maps every leaf key of Config to its evidence. A new key
// without an entry fails TestEveryKeyIsReadOrRefused.
var keyReaders = map[string]keyEvidence{
	"run.name":                            {file: "cluster/kuberay/build.go", sel: "Run.Name"},
	"run.seed":                            {file: "cmd/thinkgen/eval.go", sel: "Run.Seed"},
	"run.device":                          {file: "cmd/thinkgen/doctor.go", sel: "Run.Device"},
	"run.threads":                         {file: "cmd/thinkgen/eval.go", sel: "Run.Threads"},
	"sampling.decode_threads":             {file: "rollout/pipeline.go", sel: "DecodeThreads"},
	"eval.scenarios":                      {file: "runeval/runeval.go", sel: "Eval.Scenarios"},
	"eval.modes":                          {file: "runeval/runeval.go", sel: "Eval.Modes"},
	"eval.splits":                         {file: "cmd/thinkgen/train.go", sel: "Eval.Splits"},
	"run.checkpoint_every":                {file: "orchestrator/step.go", sel: "Run.CheckpointEvery"},
	"run.max_staleness":                   {file: "orchestrator/ahead.go", sel: "Run.MaxStaleness"},
	"run.eval_every":                      {file: "cmd/thinkgen/train.go", sel: "Run.EvalEvery"},
	"run.base":                            {file: "cmd/thinkgen/generate.go", sel: "Run.Base"},
	"model.dtype":                         {file: "model/bundle.go", sel: "Model.DType"},
	"model.mllm.tokenizer":                {file: "model/bundle.go", sel: "Tokenizer"},
	"model.mllm.vocab":                    {file: "model/bundle.go", sel: "MLLM.Vocab"},
	"model.mllm.hidden":                   {file: "model/bundle.go", sel: "MLLM.Hidden"},
	"model.mllm.layers":                   {file: "model/dit.go", sel: "Layers"},
	"model.mllm.heads":                    {file: "model/dit.go", sel: "Heads"},
	"model.mllm.kv_heads":                 {file: "model/dit.go", sel: "KVHeads"},
	"model.mllm.head_dim":                 {file: "model/mllm.go", sel: "HeadDim"},
	"model.mllm.ffn":                      {file: "model/dit.go", sel: "FFN"},
	"model.mllm.max_seq_len":              {file: "model/generate.go", sel: "MaxSeqLen"},
	"model.mllm.rope_theta":               {file: "model/dit.go", sel: "RopeTheta"},
	"model.mllm.rms_norm_eps":             {file: "model/bundle.go", sel: "MLLM.RMSNormEps"},
	"model.mllm.tie_embeddings":           {file: "model/mllm.go", sel: "TieEmbeddings"},
	"model.mllm.vision_patch":             {file: "model/mllm.go", sel: "VisionPatch"},
	"model.mllm.vision":                   {file: "model/mllm.go", sel: "IsQwen3VL"},
	"model.mllm.vit.depth":                {file: "model/qwen3vl.go", sel: "Depth"},
	"model.mllm.vit.hidden":               {file: "model/qwen3vl.go", sel: "ViT.Hidden"},
	"model.mllm.vit.heads":                {file: "model/qwen3vl.go", sel: "Heads"},
	"model.mllm.vit.ffn":                  {file: "model/qwen3vl.go", sel: "FFN"},
	"model.mllm.vit.temporal_patch":       {file: "model/qwen3vl.go", sel: "TemporalPatch"},
	"model.mllm.vit.spatial_merge":        {file: "model/qwen3vl.go", sel: "SpatialMerge"},
	"model.mllm.vit.position_embeddings":  {file: "model/qwen3vl.go", sel: "PositionEmbeddings"},
	"model.mllm.vit.deepstack":            {file: "model/qwen3vl.go", sel: "DeepStack"},
	"model.mllm.mrope_section":            {file: "model/qwen3vl.go", sel: "MRopeSection"},
	"model.connector.prepad":              {file: "model/bundle.go", sel: "Connector.Prepad"},
	"model.connector.states":              {file: "model/bundle.go", sel: "Connector.States"},
	"model.dit.hidden":                    {file: "model/bundle.go", sel: "DiT.Hidden"},
	"model.dit.layers":                    {file: "model/dit.go", sel: "Layers"},
	"model.dit.heads":                     {file: "model/dit.go", sel: "Heads"},
	"model.dit.kv_heads":                  {file: "model/dit.go", sel: "KVHeads"},
	"model.dit.ffn":                       {file: "model/dit.go", sel: "FFN"},
	"model.dit.patch":                     {file: "model/dit.go", sel: "Patch"},
	"model.dit.latent":                    {file: "export/hf.go", sel: "Latent"},
	"model.dit.channels":                  {file: "model/dit.go", sel: "Channels"},
	"model.dit.image_size":                {file: "runeval/runeval.go", sel: "DiT.ImageSize"},
	"model.dit.vae_scale":                 {file: "plan/formulas.go", sel: "VAEScale"},
	"model.dit.refiner_layers":            {file: "model/dit.go", sel: "RefinerLayers"},
	"model.dit.rope_theta":                {file: "model/dit.go", sel: "RopeTheta"},
	"data.dataset":                        {file: "worker/rollout.go", sel: "Data.Dataset"},
	"data.train_size":                     {file: "orchestrator/ahead.go", sel: "Data.TrainSize"},
	"data.eval_size":                      {file: "cmd/thinkgen/train.go", sel: "CheckEvalRows"},
	"data.mix":                            {file: "preflight/preflight.go", sel: "Data.Mix"},
	"pretrain.warmup.steps":               {file: "pretrain/run.go", sel: "Steps"},
	"pretrain.warmup.batch":               {file: "pretrain/run.go", sel: "Batch"},
	"pretrain.warmup.lr":                  {file: "pretrain/run.go", sel: "LR"},
	"pretrain.warmup.condition":           {file: "pretrain/examples.go", sel: "Condition"},
	"pretrain.warmup.facts":               {file: "pretrain/run.go", sel: "Facts"},
	"pretrain.align.steps":                {file: "pretrain/run.go", sel: "Steps"},
	"pretrain.align.batch":                {file: "pretrain/run.go", sel: "Batch"},
	"pretrain.align.lr":                   {file: "pretrain/run.go", sel: "LR"},
	"pretrain.align.condition":            {file: "pretrain/examples.go", sel: "Condition"},
	"pretrain.align.facts":                {file: "pretrain/run.go", sel: "Facts"},
	"model.vae.width":                     {file: "model/vae.go", sel: "VAE.BlockWidths"},
	"model.vae.layers_per_block":          {file: "model/vae.go", sel: "VAE.LayersPerBlock"},
	"model.vae.norm_groups":               {file: "model/vae.go", sel: "VAE.NormGroups"},
	"model.vae.quant_conv":                {file: "model/vae.go", sel: "VAE.QuantConv"},
	"pretrain.vae.steps":                  {file: "pretrain/run.go", sel: "Steps"},
	"pretrain.vae.batch":                  {file: "pretrain/run.go", sel: "Batch"},
	"pretrain.vae.lr":                     {file: "pretrain/run.go", sel: "LR"},
	"pretrain.vae.condition":              {file: "pretrain/examples.go", sel: "Condition"},
	"pretrain.vae.facts":                  {file: "pretrain/run.go", sel: "Facts"},
	"pretrain.dit.steps":                  {file: "pretrain/run.go", sel: "Steps"},
	"pretrain.dit.batch":                  {file: "pretrain/run.go", sel: "Batch"},
	"pretrain.dit.lr":                     {file: "pretrain/run.go", sel: "LR"},
	"pretrain.dit.condition":              {file: "pretrain/examples.go", sel: "Condition"},
	"pretrain.dit.facts":                  {file: "pretrain/run.go", sel: "Facts"},
	"pretrain.finetune.steps":             {file: "pretrain/run.go", sel: "Steps"},
	"pretrain.finetune.batch":             {file: "pretrain/run.go", sel: "Batch"},
	"pretrain.finetune.lr":                {file: "pretrain/run.go", sel: "LR"},
	"pretrain.finetune.condition":         {file: "pretrain/examples.go", sel: "Condition"},
	"pretrain.finetune.facts":             {file: "pretrain/run.go", sel: "Facts"},
	"schedule.phases":                     {file: "schedule/schedule.go", sel: "Schedule.Phases"},
	"schedule.cycles":                     {file: "schedule/schedule.go", sel: "Schedule.Cycles"},
	"grpo.prompts_per_step":               {file: "schedule/schedule.go", sel: "GRPO.PromptsPerStep"},
	"grpo.group":                          {file: "schedule/schedule.go", sel: "GRPO.Group"},
	"grpo.eps_low":                        {file: "learner/grpo.go", sel: "EpsLow"},
	"grpo.eps_high":                       {file: "learner/grpo.go", sel: "EpsHigh"},
	"grpo.clip_ratio_c":                   {file: "learner/flow.go", sel: "ClipRatioC"},
	"grpo.proximal":                       {file: "learner/learner.go", sel: "Proximal"},
	"grpo.behaviour_weight_cap":           {file: "learner/learner.go", sel: "BehaviourWeightCap"},
	"grpo.beta":                           {file: "learner/awm.go", sel: "Beta"},
	"grpo.mini_batches":                   {file: "learner/learner.go", sel: "MiniBatches"},
	"grpo.epochs":                         {file: "learner/learner.go", sel: "Epochs"},
	"grpo.lr":                             {file: "learner/learner.go", sel: "LR"},
	"grpo.warmup_steps":                   {file: "learner/learner.go", sel: "WarmupSteps"},
	"grpo.decay":                          {file: "learner/learner.go", sel: "Decay"},
	"grpo.temperature":                    {file: "learner/learner.go", sel: "GRPO.Temperature"},
	"grpo.top_p":                          {file: "rollout/pipeline.go", sel: "TopP"},
	"grpo.max_new_tokens":                 {file: "rollout/pipeline.go", sel: "MaxNewTokens"},
	"grpo.image_steps":                    {file: "rollout/rollout.go", sel: "ImageSteps"},
	"grpo.mix":                            {file: "worker/rollout.go", sel: "PhaseMix"},
	"flow_grpo.prompts_per_step":          {file: "schedule/schedule.go", sel: "FlowGRPO.PromptsPerStep"},
	"flow_grpo.group":                     {file: "schedule/schedule.go", sel: "FlowGRPO.Group"},
	"flow_grpo.steps":                     {file: "learner/awm.go", sel: "FlowGRPO.Steps"},
	"flow_grpo.noise_level":               {file: "learner/learner.go", sel: "NoiseLevel"},
	"flow_grpo.clip_eps":                  {file: "learner/learner.go", sel: "ClipEps"},
	"flow_grpo.clip_ratio_c":              {file: "learner/flow.go", sel: "ClipRatioC"},
	"flow_grpo.beta":                      {file: "learner/awm.go", sel: "Beta"},
	"flow_grpo.adv_clamp":                 {file: "learner/awm.go", sel: "AdvClamp"},
	"flow_grpo.timestep_fraction":         {file: "learner/learner.go", sel: "TimestepFraction"},
	"flow_grpo.sde_window":                {file: "learner/doc.go", sel: "SDEWindow"},
	"flow_grpo.sde_window_range":          {file: "rollout/dit.go", sel: "SDEWindowRange"},
	"flow_grpo.objective":                 {file: "learner/learner.go", sel: "Objective"},
	"flow_grpo.same_noise":                {file: "rollout/dit.go", sel: "SameNoise"},
	"flow_grpo.cfg":                       {file: "learner/learner.go", sel: "CFG"},
	"flow_grpo.mini_batches":              {file: "learner/learner.go", sel: "MiniBatches"},
	"flow_grpo.lr":                        {file: "learner/learner.go", sel: "LR"},
	"flow_grpo.warmup_steps":              {file: "learner/learner.go", sel: "WarmupSteps"},
	"flow_grpo.decay":                     {file: "learner/learner.go", sel: "Decay"},
	"flow_grpo.greedy_instruction":        {file: "rollout/rollout.go", sel: "GreedyInstruction"},
	"flow_grpo.mix":                       {file: "worker/rollout.go", sel: "PhaseMix"},
	"sampling.temperature":                {file: "rollout/pipeline.go", sel: "Temperature"},
	"sampling.top_p":                      {file: "rollout/pipeline.go", sel: "TopP"},
	"sampling.max_new_tokens":             {file: "pretrain/run.go", sel: "Sampling.MaxNewTokens"},
	"sampling.dit_steps":                  {file: "rollout/rollout.go", sel: "Sampling.DiTSteps"},
	"sampling.cfg":                        {file: "rollout/rollout.go", sel: "Sampling.CFG"},
	"sampling.time_shift":                 {file: "rollout/rollout.go", sel: "Sampling.TimeShift"},
	"optim.lr":                            {file: "learner/learner.go", sel: "Optim.LR"},
	"optim.beta1":                         {file: "learner/learner.go", sel: "Beta1"},
	"optim.beta2":                         {file: "learner/learner.go", sel: "Beta2"},
	"optim.eps":                           {file: "learner/learner.go", sel: "Eps"},
	"optim.weight_decay":                  {file: "learner/learner.go", sel: "WeightDecay"},
	"optim.grad_clip":                     {file: "learner/learner.go", sel: "Optim.GradClip"},
	"optim.warmup_steps":                  {file: "learner/learner.go", sel: "WarmupSteps"},
	"lora.mllm.rank":                      {file: "model/lora.go", sel: "Rank"},
	"lora.mllm.alpha":                     {file: "model/lora.go", sel: "Alpha"},
	"lora.mllm.targets":                   {file: "model/lora.go", sel: "Targets"},
	"lora.dit.rank":                       {file: "learner/learner.go", sel: "LoRA.DiT.Rank"},
	"lora.dit.alpha":                      {file: "model/lora.go", sel: "Alpha"},
	"lora.dit.targets":                    {file: "model/lora.go", sel: "Targets"},
	"optim.zero":                          {file: "learner/zero.go", sel: "Optim.Zero"},
	"optim.activation_checkpointing.mllm": {file: "learner/learner.go", sel: "ActivationCheckpointing.MLLM"},
	"optim.activation_checkpointing.dit":  {file: "learner/learner.go", sel: "ActivationCheckpointing.DiT"},
	"reward.weights":                      {file: "reward/reward.go", sel: "Reward.Weights"},
	"reward.remote":                       {file: "reward/config.go", sel: "Remote"},
	"reward.timeout":                      {file: "reward/config.go", sel: "Timeout"},
	"reward.instruction":                  {file: "worker/reward.go", sel: "Reward.Instruction"},
	"storage.uri":                         {file: "storage/location.go", sel: "URI"},
	"storage.endpoint":                    {file: "storage/location.go", sel: "Endpoint"},
	"storage.region":                      {file: "storage/location.go", sel: "Region"},
	"storage.insecure":                    {file: "storage/location.go", sel: "Insecure"},
	"storage.credentials_file":            {file: "storage/location.go", sel: "CredentialsFile"},
	"storage.compression":                 {file: "orchestrator/step.go", sel: "Storage.Compression"},
	"cluster.workers.rollout":             {file: "cluster/kuberay/build.go", sel: "Workers.Rollout"},
	"cluster.workers.reward":              {file: "cluster/kuberay/build.go", sel: "Workers.Reward"},
	"cluster.workers.learner":             {file: "cluster/kuberay/build.go", sel: "Workers.Learner"},
	"cluster.ray":                         {file: "cmd/thinkgen/localworkers.go", sel: "Cluster.Ray"},
	"cluster.namespace":                   {file: "cluster/kuberay/build.go", sel: "Cluster.Namespace"},
	"cluster.image":                       {file: "cluster/kuberay/build.go", sel: "Cluster.Image"},
	"cluster.service_account":             {file: "cluster/kuberay/build.go", sel: "Cluster.ServiceAccount"},
	"cluster.secret":                      {file: "cluster/kuberay/build.go", sel: "Cluster.Secret"},
	"cluster.ray_version":                 {file: "cluster/kuberay/build.go", sel: "RayVersion"},
	"cluster.shm_size":                    {file: "cluster/kuberay/build.go", sel: "Cluster.ShmSize"},
	"cluster.head.cpus":                   {file: "cluster/kuberay/build.go", sel: "CPUs"},
	"cluster.head.gpus":                   {file: "cluster/kuberay/build.go", sel: "GPUs"},
	"cluster.head.memory":                 {file: "cluster/kuberay/build.go", sel: "Memory"},
	"cluster.head.custom":                 {file: "cluster/placer.go", sel: "Custom"},
	"cluster.head.node_selector":          {file: "cluster/kuberay/build.go", sel: "NodeSelector"},
	"cluster.head.tolerations":            {file: "cluster/kuberay/build.go", sel: "Tolerations"},
	"cluster.head.gpu_products":           {file: "cluster/kuberay/build.go", sel: "GPUProducts"},
	"cluster.head.gpu_memory_mib":         {file: "cluster/kuberay/build.go", sel: "GPUMemoryMiB"},
	"cluster.head.priority_class":         {file: "cluster/kuberay/build.go", sel: "PriorityClass"},
	"cluster.head.shm_size":               {file: "cluster/kuberay/build.go", sel: "ShmSize"},
	"cluster.rollout.cpus":                {file: "cluster/kuberay/build.go", sel: "CPUs"},
	"cluster.rollout.gpus":                {file: "cluster/kuberay/build.go", sel: "GPUs"},
	"cluster.rollout.memory":              {file: "cluster/kuberay/build.go", sel: "Memory"},
	"cluster.rollout.custom":              {file: "cluster/placer.go", sel: "Custom"},
	"cluster.rollout.node_selector":       {file: "cluster/kuberay/build.go", sel: "NodeSelector"},
	"cluster.rollout.tolerations":         {file: "cluster/kuberay/build.go", sel: "Tolerations"},
	"cluster.rollout.gpu_products":        {file: "cluster/kuberay/build.go", sel: "GPUProducts"},
	"cluster.rollout.gpu_memory_mib":      {file: "cluster/kuberay/build.go", sel: "GPUMemoryMiB"},
	"cluster.rollout.priority_class":      {file: "cluster/kuberay/build.go", sel: "PriorityClass"},
	"cluster.rollout.shm_size":            {file: "cluster/kuberay/build.go", sel: "ShmSize"},
	"cluster.reward.cpus":                 {file: "cluster/kuberay/build.go", sel: "CPUs"},
	"cluster.reward.gpus":                 {file: "cluster/kuberay/build.go", sel: "GPUs"},
	"cluster.reward.memory":               {file: "cluster/kuberay/build.go", sel: "Memory"},
	"cluster.reward.custom":               {file: "cluster/placer.go", sel: "Custom"},
	"cluster.reward.node_selector":        {file: "cluster/kuberay/build.go", sel: "NodeSelector"},
	"cluster.reward.tolerations":          {file: "cluster/kuberay/build.go", sel: "Tolerations"},
	"cluster.reward.gpu_products":         {file: "cluster/kuberay/build.go", sel: "GPUProducts"},
	"cluster.reward.gpu_memory_mib":       {file: "cluster/kuberay/build.go", sel: "GPUMemoryMiB"},
	"cluster.reward.priority_class":       {file: "cluster/kuberay/build.go", sel: "PriorityClass"},
	"cluster.reward.shm_size":             {file: "cluster/kuberay/build.go", sel: "ShmSize"},
	"cluster.learner.cpus":                {file: "cluster/kuberay/build.go", sel: "CPUs"},
	"cluster.learner.gpus":                {file: "cluster/kuberay/build.go", sel: "GPUs"},
	"cluster.learner.memory":              {file: "cluster/kuberay/build.go", sel: "Memory"},
	"cluster.learner.custom":              {file: "cluster/placer.go", sel: "Custom"},
	"cluster.learner.node_selector":       {file: "cluster/kuberay/build.go", sel: "NodeSelector"},
	"cluster.learner.tolerations":         {file: "cluster/kuberay/build.go", sel: "Tolerations"},
	"cluster.learner.gpu_products":        {file: "cluster/kuberay/build.go", sel: "GPUProducts"},
	"cluster.learner.gpu_memory_mib":      {file: "cluster/kuberay/build.go", sel: "GPUMemoryMiB"},
	"cluster.learner.priority_class":      {file: "cluster/kuberay/build.go", sel: "PriorityClass"},
	"cluster.learner.shm_size":            {file: "cluster/kuberay/build.go", sel: "ShmSize"},
	"cluster.lease_timeout":               {file: "cmd/thinkgen/localworkers.go", sel: "LeaseTimeout"},
	"cluster.max_attempts":                {file: "cmd/thinkgen/train.go", sel: "Cluster.MaxAttempts"},
	"cluster.task_timeout":                {file: "cmd/thinkgen/localworkers.go", sel: "TaskTimeout"},
	"cluster.collective_timeout":          {file: "cmd/thinkgen/train.go", sel: "Cluster.CollectiveTimeout"},
	"tracking.mlflow":                     {file: "cmd/thinkgen/tracking.go", sel: "MLflow"},
	"tracking.experiment":                 {file: "cmd/thinkgen/tracking.go", sel: "Experiment"},
}

// leafKeys lists the dotted keys of every leaf field of t (a struct field
// that is not itself a struct: scalars, durations, lists and maps).
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Type.Kind() == reflect.Struct {
			out = append(out, leafKeys(f.Type, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// TestEveryKeyIsReadOrRefused walks every leaf key of Config: each must
// have an entry in keyReaders, and its entry must hold — the named file
// reads the key's field, or Validate refuses the named value for it.
func TestEveryKeyIsReadOrRefused(t *testing.T) {
	keys := leafKeys(reflect.TypeOf(Config{}), "")
	seen := map[string]bool{}
	for _, key := range keys {
		seen[key] = true
		ev, ok := keyReaders[key]
		if !ok {
			t.Errorf("%s: no entry in keyReaders: name the code that reads it, or refuse it in Validate", key)
			continue
		}
		if ev.refused != "" {
			_, err := Load("", []string{key + "=" + ev.refused})
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Fields) != 1 || verr.Fields[0].Key != key {
				t.Errorf("%s=%s: error %v, want Validate to refuse it", key, ev.refused, err)
			}
			continue
		}
		if strings.HasPrefix(ev.file, "config/") || strings.HasSuffix(ev.file, "_test.go") {
			t.Errorf("%s: %s is not code outside package config", key, ev.file)
			continue
		}
		src, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(ev.file)))
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if !regexp.MustCompile(`\.` + regexp.QuoteMeta(ev.sel) + `\b`).Match(src) {
			t.Errorf("%s: %s does not read .%s", key, ev.file, ev.sel)
		}
	}
	for key := range keyReaders {
		if !seen[key] {
			t.Errorf("keyReaders has %s, which is not a key of Config", key)
		}
	}
}
