package worker

import (
	"fmt"
	"math"

	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/shards"
)

// dataStats are the step's statistics of its data, which the learn task
// reports beside the learner's: the rewards' mean and std, overall and per
// scenario; the mean completion length, the share of completions without
// an instruction and the mean score of the instructions themselves
// (instructionScores).
func dataStats(rolls []shards.RolloutRow, rows []shards.RewardRow) map[string]float64 {
	m := map[string]float64{}
	var tokens, noAnswer float64
	for _, r := range rolls {
		tokens += float64(len(r.TokenIDs))
		if r.Instruction == "" {
			noAnswer++
		}
	}
	if len(rolls) > 0 {
		m["rollout/cot_tokens"] = tokens / float64(len(rolls))
		m["rollout/no_answer"] = noAnswer / float64(len(rolls))
	}
	for sc, v := range instructionScores(rolls) {
		m["rollout/instruction/"+sc] = v
	}
	by := map[string][]float64{}
	var all []float64
	for _, r := range rows {
		by[r.Scenario] = append(by[r.Scenario], float64(r.Reward))
		all = append(all, float64(r.Reward))
	}
	m["reward/mean"], m["reward/std"] = meanStd(all)
	for sc, v := range by {
		m["reward/"+sc+"/mean"], m["reward/"+sc+"/std"] = meanStd(v)
	}
	return m
}

func meanStd(v []float64) (mean, std float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)))
}

// instructionScores is the mean score, per scenario, of the instructions
// the MLLM wrote for composition and reasoning rows, read as captions and
// checked against the row's requirements before any image is drawn
// (reward.InstructionScore): whether the MLLM's answers improve, apart
// from how well the DiT draws them. Rows whose spec does not parse are
// left out (the reward task has already failed on them).
func instructionScores(rolls []shards.RolloutRow) map[string]float64 {
	sum, n := map[string]float64{}, map[string]int{}
	for _, r := range rolls {
		v, ok, err := reward.InstructionScore(r.Scenario, []byte(r.Spec), r.Instruction)
		if err != nil || !ok {
			continue
		}
		sum[r.Scenario] += v
		n[r.Scenario]++
	}
	for sc := range sum {
		sum[sc] /= float64(n[sc])
	}
	return sum
}

// stalenessStats checks that every row was sampled by a policy version at
// most k versions older than version, the one the learn task updates
// (asynchronous SepGRPO, run.max_staleness), and returns the staleness of
// the step's rows: its mean, its maximum and the share of rows d versions
// old, staleness/rows_<d> for d = 0 … k (the step's histogram).
func stalenessStats(rolls []shards.RolloutRow, version, k int) (map[string]float64, error) {
	counts := make([]float64, k+1)
	var sum, most float64
	for _, r := range rolls {
		d := version - int(r.PolicyVersion)
		if d < 0 || d > k {
			return nil, fmt.Errorf("row %s was sampled by policy version %d: %d versions from the %d this step updates, outside 0 … run.max_staleness (%d)",
				r.RowID, r.PolicyVersion, d, version, k)
		}
		counts[d]++
		sum += float64(d)
		most = max(most, float64(d))
	}
	m := map[string]float64{}
	if len(rolls) == 0 {
		return m, nil
	}
	n := float64(len(rolls))
	m["staleness/mean"], m["staleness/max"] = sum/n, most
	for d, c := range counts {
		m[fmt.Sprintf("staleness/rows_%d", d)] = c / n
	}
	return m, nil
}
