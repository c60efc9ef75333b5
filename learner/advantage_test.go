package learner

import (
	"math"
	"strings"
	"testing"

	"github.com/thinkgen/thinkgen/shards"
)

var groupAdvantagesTests = []struct {
	name     string
	rewards  []float64
	groups   []int64
	unbiased bool
	eps      float64
	want     []float64
	wantStat []GroupStat
	groupsN  int
	zeroStd  int
}{
	{
		// Group 7 = {1, 2, 3} at positions 0, 2, 4: mean 2, deviations −1, 0, +1,
		// squared sum 2, unbiased std sqrt(2/2) = 1 → A = −1, 0, +1.
		// Group 3 = {0.5, 0.5} at positions 1, 3: all equal → 0, 0.
		name:    "unbiased, non-contiguous ids, one zero-std group",
		rewards: []float64{1, 0.5, 2, 0.5, 3}, groups: []int64{7, 3, 7, 3, 7},
		unbiased: true, eps: 0,
		want:     []float64{-1, 0, 0, 0, 1},
		wantStat: []GroupStat{{3, 2, 1}, {2, 0.5, 0}, {3, 2, 1}, {2, 0.5, 0}, {3, 2, 1}},
		groupsN:  2, zeroStd: 1,
	},
	{
		// Same rewards, population std sqrt(2/3) = 0.816496580927726:
		// A = ∓1/0.816496580927726 = ∓sqrt(3/2) = ∓1.224744871391589.
		name:    "population std",
		rewards: []float64{1, 0.5, 2, 0.5, 3}, groups: []int64{7, 3, 7, 3, 7},
		unbiased: false, eps: 0,
		want:     []float64{-math.Sqrt(1.5), 0, 0, 0, math.Sqrt(1.5)},
		wantStat: []GroupStat{{3, 2, math.Sqrt(2.0 / 3)}, {2, 0.5, 0}, {3, 2, math.Sqrt(2.0 / 3)}, {2, 0.5, 0}, {3, 2, math.Sqrt(2.0 / 3)}},
		groupsN:  2, zeroStd: 1,
	},
	{
		// eps enters the denominator: unbiased std 1 → A = ∓1/(1 + 0.5) = ∓2/3.
		name:    "eps in the denominator",
		rewards: []float64{1, 2, 3}, groups: []int64{0, 0, 0},
		unbiased: true, eps: 0.5,
		want:     []float64{-2.0 / 3, 0, 2.0 / 3},
		wantStat: []GroupStat{{3, 2, 1}, {3, 2, 1}, {3, 2, 1}},
		groupsN:  1, zeroStd: 0,
	},
	{
		// Group 0 = {5} alone → 0 (counted as zero-std). Group 1 = {1, 3}: mean 2,
		// deviations ∓1, unbiased std sqrt(2/1) = 1.4142… → A = ∓0.7071067811865475.
		name:    "size-1 group",
		rewards: []float64{5, 1, 3}, groups: []int64{0, 1, 1},
		unbiased: true, eps: 0,
		want:     []float64{0, -1 / math.Sqrt2, 1 / math.Sqrt2},
		wantStat: []GroupStat{{1, 5, 0}, {2, 2, math.Sqrt2}, {2, 2, math.Sqrt2}},
		groupsN:  2, zeroStd: 1,
	},
	{
		// 0.1+0.1+0.1 = 0.30000000000000004, /3 = 0.10000000000000002 ≠ 0.1: a
		// naive mean would leave a residue; equal rewards must give exactly 0.
		name:    "equal rewards with rounding residue",
		rewards: []float64{0.1, 0.1, 0.1, 0, 1}, groups: []int64{-4, -4, -4, 9, 9},
		unbiased: false, eps: 1e-6,
		// Group 9 = {0, 1}: mean 0.5, population std 0.5 → A = ∓0.5/(0.5+1e-6).
		want:     []float64{0, 0, 0, -0.5 / (0.5 + 1e-6), 0.5 / (0.5 + 1e-6)},
		wantStat: []GroupStat{{3, 0.1, 0}, {3, 0.1, 0}, {3, 0.1, 0}, {2, 0.5, 0.5}, {2, 0.5, 0.5}},
		groupsN:  2, zeroStd: 1,
	},
	{
		name: "empty", rewards: nil, groups: nil, unbiased: true, eps: 1e-6,
		want: []float64{}, wantStat: []GroupStat{}, groupsN: 0, zeroStd: 0,
	},
}

func TestGroupAdvantages(t *testing.T) {
	for _, tc := range groupAdvantagesTests {
		t.Run(tc.name, func(t *testing.T) {
			adv, group, st, err := GroupAdvantages(tc.rewards, tc.groups, tc.unbiased, tc.eps)
			if err != nil {
				t.Fatal(err)
			}
			if len(adv) != len(tc.want) || len(group) != len(tc.want) {
				t.Fatalf("got %d advantages and %d group stats, want %d", len(adv), len(group), len(tc.want))
			}
			for i := range adv {
				if math.Abs(adv[i]-tc.want[i]) > 1e-12 {
					t.Errorf("A[%d] = %.15g, want %.15g", i, adv[i], tc.want[i])
				}
				if tc.want[i] == 0 && adv[i] != 0 {
					t.Errorf("A[%d] = %g, want exactly 0", i, adv[i])
				}
				g, w := group[i], tc.wantStat[i]
				if g.Size != w.Size || math.Abs(g.Mean-w.Mean) > 1e-12 || math.Abs(g.Std-w.Std) > 1e-12 {
					t.Errorf("group stat %d = %+v, want %+v", i, g, w)
				}
			}
			if st.Groups != tc.groupsN || st.ZeroStdGroups != tc.zeroStd {
				t.Errorf("groups %d, zero-std %d; want %d, %d", st.Groups, st.ZeroStdGroups, tc.groupsN, tc.zeroStd)
			}
			wantRatio := 0.0
			if tc.groupsN > 0 {
				wantRatio = float64(tc.zeroStd) / float64(tc.groupsN)
			}
			if st.ZeroStdRatio != wantRatio {
				t.Errorf("zero-std ratio %g, want %g", st.ZeroStdRatio, wantRatio)
			}
			// The summary is recomputed here independently of summarize.
			if len(tc.want) > 0 {
				mean, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
				for _, a := range tc.want {
					mean += a / float64(len(tc.want))
					lo, hi = math.Min(lo, a), math.Max(hi, a)
				}
				v := 0.0
				for _, a := range tc.want {
					v += (a - mean) * (a - mean) / float64(len(tc.want))
				}
				if math.Abs(st.Mean-mean) > 1e-12 || math.Abs(st.Std-math.Sqrt(v)) > 1e-12 || math.Abs(st.Min-lo) > 1e-12 || math.Abs(st.Max-hi) > 1e-12 {
					t.Errorf("stats mean %g std %g min %g max %g; want %g %g %g %g", st.Mean, st.Std, st.Min, st.Max, mean, math.Sqrt(v), lo, hi)
				}
			}
		})
	}
}

func TestGroupAdvantagesStatsOfFirstCase(t *testing.T) {
	// A = [−1, 0, 0, 0, 1]: mean 0, population std sqrt(2/5), min −1, max 1.
	_, _, st, err := GroupAdvantages([]float64{1, 0.5, 2, 0.5, 3}, []int64{7, 3, 7, 3, 7}, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mean != 0 || math.Abs(st.Std-math.Sqrt(0.4)) > 1e-15 || st.Min != -1 || st.Max != 1 || st.ZeroStdRatio != 0.5 {
		t.Errorf("stats = %+v", st)
	}
}

func TestGroupAdvantagesRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		rewards []float64
		groups  []int64
		eps     float64
		want    string
	}{
		{"length mismatch", []float64{1, 2}, []int64{0}, 1e-6, "2 rewards for 1 group ids"},
		{"NaN reward", []float64{1, math.NaN()}, []int64{0, 0}, 1e-6, "reward 1 (group 0)"},
		{"infinite reward", []float64{math.Inf(-1)}, []int64{3}, 1e-6, "reward 0 (group 3)"},
		{"negative eps", []float64{1}, []int64{0}, -1, "eps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := GroupAdvantages(tc.rewards, tc.groups, true, tc.eps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAdvantageRows(t *testing.T) {
	rows := []shards.RewardRow{
		{Run: "r1", Step: 4, GroupID: 10, SampleIndex: 0, Reward: 1},
		{Run: "r1", Step: 4, GroupID: 11, SampleIndex: 0, Reward: 0.25},
		{Run: "r1", Step: 4, GroupID: 10, SampleIndex: 1, Reward: 0},
		{Run: "r1", Step: 4, GroupID: 11, SampleIndex: 1, Reward: 0.25},
	}
	out, st, err := AdvantageRows(rows, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Group 10 = {1, 0}: mean 0.5, population std 0.5 → A = +1, −1. Group 11: equal → 0.
	want := []shards.AdvantageRow{
		{Run: "r1", Step: 4, GroupID: 10, SampleIndex: 0, Reward: 1, GroupMean: 0.5, GroupStd: 0.5, Advantage: 1},
		{Run: "r1", Step: 4, GroupID: 11, SampleIndex: 0, Reward: 0.25, GroupMean: 0.25, GroupStd: 0, Advantage: 0},
		{Run: "r1", Step: 4, GroupID: 10, SampleIndex: 1, Reward: 0, GroupMean: 0.5, GroupStd: 0.5, Advantage: -1},
		{Run: "r1", Step: 4, GroupID: 11, SampleIndex: 1, Reward: 0.25, GroupMean: 0.25, GroupStd: 0, Advantage: 0},
	}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, out[i], want[i])
		}
	}
	if st.Groups != 2 || st.ZeroStdGroups != 1 {
		t.Errorf("stats = %+v", st)
	}
	rows[3].GroupID, rows[3].SampleIndex = 10, 0
	if _, _, err := AdvantageRows(rows, false, 0); err == nil || !strings.Contains(err.Error(), "rows 0 and 3") {
		t.Errorf("duplicate sample: err = %v", err)
	}
}
