// Package preflight refuses, before a run does any work, what would make
// it fail later: a missing or corrupt base checkpoint, a base of another
// model shape than the configuration's, an empty dataset, and a user's
// dataset (data.dataset) that is unreadable or unfit to train on.
package preflight

import (
	"errors"
	"fmt"
	"strings"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/export"
	"github.com/thinkgen/thinkgen/worker"
)

// Check checks that a new run of cfg can start: its run.base (an export
// or a saved bundle) reads and has the configuration's model shape, or
// (a transformers folder) passes thinkgen import's checks, and
// every phase's data mix yields prompts. Errors name the configuration
// key at fault.
func Check(cfg *config.Config) error {
	if cfg.Run.Base == "" {
		return errors.New("run.base: empty; set it to the shipped base (base/tiny) or a pretrain result")
	}
	if export.IsHFModel(cfg.Run.Base) {
		// Checked as thinkgen import checks it; train imports it.
		if err := export.CheckHF(cfg, export.HFSources{MLLM: cfg.Run.Base}); err != nil {
			return fmt.Errorf("run.base %s (a transformers folder): %w", cfg.Run.Base, err)
		}
	} else if bcfg, err := export.ReadModelConfig(cfg.Run.Base); err != nil {
		return fmt.Errorf("run.base: %w", err)
	} else if diff := bcfg.Model.ShapeDiff(cfg.Model); len(diff) > 0 {
		return fmt.Errorf("run.base %s: a checkpoint of another model shape (the base's model section vs the configuration's: %s)",
			cfg.Run.Base, strings.Join(diff, ", "))
	}
	if cfg.Data.TrainSize <= 0 {
		return fmt.Errorf("data.train_size: %d, want > 0: the run's prompts come from the train split", cfg.Data.TrainSize)
	}
	var set *datasets.TrainSet
	if path := cfg.Data.Dataset; path != "" {
		rows, info, err := datasets.ReadFile(path)
		if err != nil {
			return fmt.Errorf("data.dataset: %w", err)
		}
		if set, err = datasets.NewTrainSet(rows, info, cfg.Model.DiT.ImageSize, cfg.Data.TrainSize); err != nil {
			return fmt.Errorf("data.dataset %s: %w", path, err)
		}
	}
	for _, m := range []struct {
		key   string
		mix   map[string]float64
		phase config.Phase
	}{{"data.mix", cfg.Data.Mix, ""}, {"grpo.mix", cfg.GRPO.Mix, config.PhaseMLLMGRPO}, {"flow_grpo.mix", cfg.FlowGRPO.Mix, config.PhaseDiTGRPO}} {
		if len(datasets.ScenarioCycle(m.mix)) == 0 && len(m.mix) > 0 {
			return fmt.Errorf("%s: every scenario has weight 0: the dataset would be empty", m.key)
		}
		if m.phase == "" {
			continue
		}
		if _, err := worker.TrainRows(cfg, set, m.phase, []int64{0}); err != nil {
			return fmt.Errorf("data (%s): %w", m.phase, err)
		}
	}
	return nil
}
