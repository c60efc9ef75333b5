package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
)

// Shard is one rank's part of a ZeRO-1 optimiser: the indices of the
// parameters it owns and their state ("m.<i>", "v.<i>", …).
type Shard struct {
	Params []int
	State  map[string]*ts.Tensor
}

// shardManifest lists a sharded optimiser's files, one per rank, and the
// parameters each holds. It is optim-<name>.shards.json.
type shardManifest struct {
	World  int          `json:"world"`
	Step   int64        `json:"step"`
	Shards []shardEntry `json:"shards"`
}

type shardEntry struct {
	Rank   int    `json:"rank"`
	File   string `json:"file"`
	Params []int  `json:"params"`
}

func optimizerFile(name string) string { return "optim-" + name + ".safetensors" }

func shardManifestFile(name string) string { return "optim-" + name + ".shards.json" }

func shardFile(name string, rank, world int) string {
	return fmt.Sprintf("optim-%s.shard-%d-of-%d.safetensors", name, rank, world)
}

// saveOptimizer writes o into the version directory dir: one file, or
// with shards one file per rank and their manifest.
func saveOptimizer(dir string, o Optimizer) error {
	_, step := o.Opt.State()
	meta := map[string]string{"step": strconv.FormatInt(step, 10)}
	if o.Shards == nil {
		tensors, _ := o.Opt.State()
		names, list := sortedState(tensors)
		if err := model.SaveTensors(filepath.Join(dir, optimizerFile(o.Name)), names, list, meta); err != nil {
			return fmt.Errorf("optimiser %s: %w", o.Name, err)
		}
		return nil
	}
	man := shardManifest{World: len(o.Shards), Step: step}
	for r, sh := range o.Shards {
		file := shardFile(o.Name, r, len(o.Shards))
		names, list := sortedState(sh.State)
		if err := model.SaveTensors(filepath.Join(dir, file), names, list, meta); err != nil {
			return fmt.Errorf("optimiser %s shard %d of %d: %w", o.Name, r, len(o.Shards), err)
		}
		man.Shards = append(man.Shards, shardEntry{Rank: r, File: file, Params: append([]int{}, sh.Params...)})
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, shardManifestFile(o.Name)), b, 0o644)
}

// LoadOptimizer restores the optimiser state saved under name in the
// fetched version directory dir into o, whatever the number of ranks that
// saved it and that o is a shard of: o takes the state of the parameters
// it owns from whichever file holds them (float32 masters included, which
// it then rounds into the parameters) (one file, or a ZeRO-1 group's
// shard files listed in their manifest). It reports false when the version
// holds none (version 0, or a phase that has not run yet). A shard the
// manifest lists but the directory lacks is refused by name.
func LoadOptimizer(dir, name string, o *optim.AdamW) (bool, error) {
	man, err := readShards(dir, name, o.Len())
	if err != nil || man == nil {
		return false, err
	}
	for _, sh := range man.Shards {
		path := filepath.Join(dir, sh.File)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("optimiser %s: shard %d of %d (%s) is missing from the checkpoint", name, sh.Rank, man.World, sh.File)
		}
		if err := loadState(path, sh.Params, o); err != nil {
			return false, fmt.Errorf("optimiser %s: %w", name, err)
		}
	}
	o.SetStep(man.Step)
	o.SyncParams()
	return true, nil
}

// readShards reads the shard manifest of optimiser name in dir, or
// describes its single file as the one shard of every parameter; nil when
// the version holds no state of it.
func readShards(dir, name string, params int) (*shardManifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, shardManifestFile(name)))
	if err == nil {
		var man shardManifest
		if err := json.Unmarshal(b, &man); err != nil {
			return nil, fmt.Errorf("optimiser %s: %s: %w", name, shardManifestFile(name), err)
		}
		seen := make([]bool, params)
		for _, sh := range man.Shards {
			for _, i := range sh.Params {
				if i < 0 || i >= params || seen[i] {
					return nil, fmt.Errorf("optimiser %s: %s: shard %d lists parameter %d twice or out of [0, %d)", name, shardManifestFile(name), sh.Rank, i, params)
				}
				seen[i] = true
			}
		}
		for i, ok := range seen {
			if !ok {
				return nil, fmt.Errorf("optimiser %s: %s: no shard holds parameter %d", name, shardManifestFile(name), i)
			}
		}
		return &man, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("optimiser %s: %w", name, err)
	}
	path := filepath.Join(dir, optimizerFile(name))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	meta, err := model.ReadSafetensorsMeta(path)
	if err != nil {
		return nil, fmt.Errorf("optimiser %s: %w", name, err)
	}
	step, err := strconv.ParseInt(meta["step"], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("optimiser %s: step %q: %w", name, meta["step"], err)
	}
	all := make([]int, params)
	for i := range all {
		all[i] = i
	}
	return &shardManifest{World: 1, Step: step, Shards: []shardEntry{{File: optimizerFile(name), Params: all}}}, nil
}

// loadState reads the state of params from the file at path: into o's own
// tensors for the parameters o owns, into scratch tensors (dropped) for
// the others.
func loadState(path string, params []int, o *optim.AdamW) error {
	want := map[string]*ts.Tensor{}
	var scratch []*ts.Tensor
	defer func() {
		for _, t := range scratch {
			t.MustDrop()
		}
	}()
	for _, i := range params {
		st := o.StateOf(i)
		if st == nil {
			st = o.StateLike(i)
			for _, t := range st {
				scratch = append(scratch, t)
			}
		}
		for n, t := range st {
			want[n] = t
		}
	}
	names, list := sortedState(want)
	_, err := model.LoadTensors(path, names, list)
	return err
}
