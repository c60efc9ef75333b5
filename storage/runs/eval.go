package runs

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
)

// EvalPrefix is the key prefix of a run's eval results.
func EvalPrefix(run string) string { return storage.RunPrefix(run) + "eval/" }

// EvalKey is the key of the held-out scores of policy version v: by mode
// ("direct", "think"), one reward.Summary per scenario. A stored one is
// complete (it is written after the per-row scores).
func EvalKey(run string, v int) string { return fmt.Sprintf("%s%06d.json", EvalPrefix(run), v) }

// EvalRowsKey is the key of the per-row held-out scores of version v, by
// mode.
func EvalRowsKey(run string, v int) string {
	return fmt.Sprintf("%s%06d-rows.json", EvalPrefix(run), v)
}

// EvalIDKey and EvalIDRowsKey are EvalKey and EvalRowsKey of the
// in-distribution held-out split (eval-id): eval/<version>-id.json and
// eval/<version>-id-rows.json, which ParseEvalKey does not take for a
// version's scores.
func EvalIDKey(run string, v int) string { return fmt.Sprintf("%s%06d-id.json", EvalPrefix(run), v) }

// EvalIDRowsKey: see EvalIDKey.
func EvalIDRowsKey(run string, v int) string {
	return fmt.Sprintf("%s%06d-id-rows.json", EvalPrefix(run), v)
}

// EvalGridKey is the key of the PNG grid of held-out samples of version v
// in mode.
func EvalGridKey(run string, v int, mode string) string {
	return fmt.Sprintf("%s%06d-grid-%s.png", EvalPrefix(run), v, mode)
}

// ParseEvalKey parses an EvalKey (mode "") or an EvalGridKey of run; ok
// is false for any other key.
func ParseEvalKey(run, key string) (version int, mode string, ok bool) {
	name, found := strings.CutPrefix(key, EvalPrefix(run))
	if !found || strings.Contains(name, "/") {
		return 0, "", false
	}
	if v, found := strings.CutSuffix(name, ".json"); found {
		n, err := strconv.Atoi(v)
		return n, "", err == nil && n >= 0
	}
	v, m, found := strings.Cut(strings.TrimSuffix(name, ".png"), "-grid-")
	if !found || !strings.HasSuffix(name, ".png") || m == "" {
		return 0, "", false
	}
	n, err := strconv.Atoi(v)
	return n, m, err == nil && n >= 0
}

// ReadEvalScores reads the held-out scores of version v of run (EvalKey).
func ReadEvalScores(ctx context.Context, st storage.Store, run string, v int) (map[string][]reward.Summary, error) {
	var scores map[string][]reward.Summary
	if err := storage.GetJSON(ctx, st, EvalKey(run, v), &scores); err != nil {
		return nil, err
	}
	return scores, nil
}

// CurvesKey is the key of the PNG of a run's training curves.
func CurvesKey(run string) string { return storage.RunPrefix(run) + "curves.png" }
