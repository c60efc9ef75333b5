// Package progress shows the progress of long work: a bar with rate and ETA
// on a terminal, and one plain line every few seconds (with the same
// figures) when the output is a log file or a CI console.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar tracks n units of work. It is not safe for concurrent use.
type Bar struct {
	w        io.Writer
	desc     string
	total    int
	done     int
	start    time.Time
	lastLine time.Time
	every    time.Duration
	bar      *progressbar.ProgressBar // nil when w is not a terminal
}

// New starts a bar for total units described by desc ("selftest", "warmup").
// On a terminal it draws a progress bar; elsewhere it prints a line at most
// every `every` (5 s if zero) and at the end.
func New(w io.Writer, desc string, total int, every time.Duration) *Bar {
	if every <= 0 {
		every = 5 * time.Second
	}
	b := &Bar{w: w, desc: desc, total: total, start: time.Now(), every: every}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("it"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return b
}

// Step records one unit done; status (e.g. "loss 0.0123") is shown beside
// the bar or in the line.
func (b *Bar) Step(status string) {
	b.done++
	if b.bar != nil {
		b.bar.Describe(b.desc + " " + status)
		_ = b.bar.Add(1)
		return
	}
	now := time.Now()
	if b.done == b.total || now.Sub(b.lastLine) >= b.every {
		b.lastLine = now
		fmt.Fprintln(b.w, b.Line(status))
	}
}

// Line renders the current state as one line:
// "selftest 300/1000 (30%) loss 0.0123 | 512.3 it/s | elapsed 1s | ETA 2s".
func (b *Bar) Line(status string) string {
	elapsed := time.Since(b.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed.Seconds()
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(b.total-b.done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 0
	if b.total > 0 {
		pct = 100 * b.done / b.total
	}
	if status != "" {
		status = " " + status
	}
	return fmt.Sprintf("%s %d/%d (%d%%)%s | %.1f it/s | elapsed %s | ETA %s",
		b.desc, b.done, b.total, pct, status, rate, elapsed.Round(time.Second), eta)
}
