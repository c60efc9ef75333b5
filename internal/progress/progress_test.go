package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "warmup", 4, time.Hour)
	for i := 0; i < 4; i++ {
		b.Step("loss 0.5")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// The first step prints (no line yet), then nothing until the last.
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"warmup 4/4 (100%)", "loss 0.5", "it/s", "ETA 0s"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q lacks %q", last, want)
		}
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("plain output contains carriage returns")
	}
}

func TestLineBeforeAnyStep(t *testing.T) {
	b := New(&bytes.Buffer{}, "x", 10, 0)
	if got := b.Line(""); !strings.HasPrefix(got, "x 0/10 (0%) |") {
		t.Fatalf("Line = %q", got)
	}
}
