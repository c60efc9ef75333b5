package reward

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/thinkgen/thinkgen/datasets"
)

// BenchmarkScore scores ground-truth renders of each scenario, one item
// per iteration; run with -cpu 1 for items per second per core.
func BenchmarkScore(b *testing.B) {
	for _, size := range []int{32, 64} {
		for _, sc := range datasets.AllScenarios {
			b.Run(fmt.Sprintf("%s/%dpx", sc, size), func(b *testing.B) {
				items := generatedItems(b, datasets.Options{Seed: 9, Size: size, Scenarios: []string{sc}}, 64)
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

// BenchmarkBatch scores a batch of 64 mixed items in process and through
// the reward-serve handler over loopback HTTP (PNG encoding, JSON, one
// request), to show what the remote path costs.
func BenchmarkBatch(b *testing.B) {
	items := generatedItems(b, datasets.Options{Seed: 9}, 64)
	srv := httptest.NewServer(NewHandler(Builtin(nil)))
	defer srv.Close()
	client, err := NewClient(srv.URL, ClientOptions{BatchSize: 64, Concurrency: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, sc := range []struct {
		name string
		s    Scorer
	}{{"in-process", Builtin(nil)}, {"remote", client}} {
		b.Run(sc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := sc.s.Score(context.Background(), items); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "items/s")
		})
	}
}
