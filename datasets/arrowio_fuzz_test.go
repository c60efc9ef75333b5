package datasets

import (
	"bytes"
	"testing"

	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// ipcFile writes rows as a dataset file in memory.
func ipcFile(t testing.TB, rows []Row) []byte {
	t.Helper()
	var buf writeSeeker
	if err := WriteIPC(&buf, rows, 32); err != nil {
		t.Fatal(err)
	}
	return buf.b
}

// writeSeeker is an in-memory io.WriteSeeker.
type writeSeeker struct {
	b   []byte
	off int
}

func (w *writeSeeker) Write(p []byte) (int, error) {
	if n := w.off + len(p); n > len(w.b) {
		w.b = append(w.b, make([]byte, n-len(w.b))...)
	}
	copy(w.b[w.off:], p)
	w.off += len(p)
	return len(p), nil
}

func (w *writeSeeker) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case 1:
		off += int64(w.off)
	case 2:
		off += int64(len(w.b))
	}
	w.off = int(off)
	return off, nil
}

// FuzzReadIPC reads arbitrary bytes as a dataset file: an error or rows,
// never a panic, and at most 64 MiB plus 64 bytes per input byte
// allocated (the file's own lengths must not make the reader allocate
// past the file).
func FuzzReadIPC(f *testing.F) {
	rows := genRows(f, Train, 3)
	for i := range rows {
		rows[i].Target = rows[i].Target[:min(len(rows[i].Target), 64)]
		rows[i].Reference = nil
	}
	f.Add(ipcFile(f, rows))
	f.Add(ipcFile(f, rows[:1]))
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccap.Check(t, 64<<20+64*uint64(len(data)), func() {
			got, _, err := ReadIPC(bytes.NewReader(data))
			if err == nil {
				for _, r := range got {
					_ = r.Spec.JSON()
				}
			}
		})
	})
}
