package reward

import (
	"context"
	"fmt"
	"testing"

	"github.com/thinkgen/thinkgen/datasets"
)

// BenchmarkScore scores ground-truth renders of each scenario, one item
// per iteration; run with -cpu 1 for items per second per core.
func BenchmarkScore(b *testing.B) {
	for _, size := range []int{32, 64} {
		for _, sc := range datasets.AllScenarios {
			b.Run(fmt.Sprintf("%s/%dpx", sc, size), func(b *testing.B) {
				rows, err := datasets.Generate(datasets.Options{Seed: 9, Size: size, Scenarios: []string{sc}}, 0, 64)
				if err != nil {
					b.Fatal(err)
				}
				items := make([]Item, len(rows))
				for i, r := range rows {
					items[i] = rowItem(b, r)
				}
				reg := Builtin(nil)
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := reg.Score(ctx, items[i%len(items):i%len(items)+1]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
			})
		}
	}
}
