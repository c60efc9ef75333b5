package task

import (
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/storage"
)

func TestValidate(t *testing.T) {
	ok := Task{Run: "r", Step: 1, Kind: Rollout, ID: "r0", Epoch: 2, Attempt: 1, Phase: config.PhaseMLLMGRPO, Rows: []int64{3}}
	shard := storage.Object{Key: "runs/r/steps/000001/rollout/r0-a1.arrow", Size: 10, SHA256: strings.Repeat("0", 64)}
	tests := []struct {
		name string
		edit func(*Task)
		want string // "" means valid
	}{
		{"rollout", func(*Task) {}, ""},
		{"reward", func(t *Task) { t.Kind, t.Rows, t.Inputs = Reward, nil, []storage.Object{shard} }, ""},
		{"learn", func(t *Task) { t.Kind, t.Rows, t.Inputs = Learn, nil, []storage.Object{shard, shard} }, ""},
		{"run with a slash", func(t *Task) { t.Run = "a/b" }, "a/b"},
		{"step 0", func(t *Task) { t.Step = 0 }, "step 0"},
		{"epoch 0", func(t *Task) { t.Epoch = 0 }, "epoch 0"},
		{"attempt 0", func(t *Task) { t.Attempt = 0 }, "attempt 0"},
		{"unknown phase", func(t *Task) { t.Phase = "sft" }, `unknown phase "sft"`},
		{"negative version", func(t *Task) { t.PolicyVersion = -1 }, "policy version -1"},
		{"rollout without prompts", func(t *Task) { t.Rows = nil }, "without prompts"},
		{"reward with two inputs", func(t *Task) { t.Kind, t.Inputs = Reward, []storage.Object{shard, shard} }, "one rollout shard"},
		{"learn without shards", func(t *Task) { t.Kind = Learn }, "without shards"},
		{"learn rank", func(t *Task) {
			learnRank(t, Rendezvous{Addr: "127.0.0.1:1", World: 2, Rank: 1, Epoch: 3, TimeoutMS: 10})
		}, ""},
		{"rank without address", func(t *Task) { learnRank(t, Rendezvous{World: 2, TimeoutMS: 10}) }, "without an address"},
		{"rank of one", func(t *Task) { learnRank(t, Rendezvous{Addr: "h:1", World: 1, TimeoutMS: 10}) }, "rank 0 of 1"},
		{"rank out of range", func(t *Task) { learnRank(t, Rendezvous{Addr: "h:1", World: 2, Rank: 2, TimeoutMS: 10}) }, "rank 2 of 2"},
		{"rank without timeout", func(t *Task) { learnRank(t, Rendezvous{Addr: "h:1", World: 2}) }, "timeout 0 ms"},
		{"unknown kind", func(t *Task) { t.Kind = "eval" }, `unknown kind "eval"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := ok
			tt.edit(&x)
			err := x.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("valid task refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if got := ok.OutputKey(); got != "runs/r/steps/000001/rollout/r0-e2-a1.arrow" {
		t.Errorf("output key %s", got)
	}
}

// learnRank makes t a learn task of the learner rank rv describes.
func learnRank(t *Task, rv Rendezvous) {
	shard := storage.Object{Key: "runs/r/steps/000001/rollout/r0-a1.arrow", Size: 10, SHA256: strings.Repeat("0", 64)}
	t.Kind, t.Rows, t.Inputs, t.Rendezvous = Learn, nil, []storage.Object{shard}, &rv
}
