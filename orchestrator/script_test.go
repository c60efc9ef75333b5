package orchestrator_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// update rewrites the expected output of the scenario scripts in testdata
// with what the controller does now: go test ./orchestrator -run Scenario -update.
var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt")

// A scenario script (testdata/*.txt, after etcd raft's datadriven tests) is
// a sequence of directives, each a command line, a line "----" and the
// expected output, ended by a blank line:
//
//	# a comment
//	run steps=2 rollout-tasks=2
//	----
//	expected output
//
// A command is a name and arguments key=value (or a bare key, true).
type directive struct {
	line int    // of the command, 1-based
	cmd  string // the command line as written
	name string
	args map[string]string
	want string
}

func parseScript(path string) (lines []string, ds []directive, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	lines = strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		d := directive{line: i + 1, cmd: l, args: map[string]string{}}
		f := strings.Fields(l)
		d.name = f[0]
		for _, a := range f[1:] {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				v = "true"
			}
			d.args[k] = v
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			return nil, nil, fmt.Errorf("%s:%d: %q is not followed by ----", path, i+1, l)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		d.want = strings.Join(want, "\n")
		ds = append(ds, d)
	}
	return lines, ds, nil
}

// runScript runs each directive of the script at path through do, which
// returns the directive's output, and compares it with the expected one;
// with -update it rewrites the script with the outputs instead.
func runScript(t *testing.T, path string, do func(t *testing.T, d directive) string) {
	t.Helper()
	src, ds, err := parseScript(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	next := 0 // first line of src not yet copied
	for _, d := range ds {
		got := strings.TrimRight(do(t, d), "\n")
		if strings.Contains(got, "\n\n") {
			t.Fatalf("%s:%d: %s: output holds a blank line:\n%s", path, d.line, d.cmd, got)
		}
		if *update {
			for _, l := range src[next : d.line+1] { // up to and including ----
				out.WriteString(l + "\n")
			}
			out.WriteString(got + "\n")
			next = d.line + 1 // the first line after ----
			if d.want != "" {
				next += strings.Count(d.want, "\n") + 1
			}
			continue
		}
		if got != d.want {
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", path, d.line, d.cmd, got, d.want)
		}
	}
	if *update {
		for _, l := range src[next:] {
			out.WriteString(l + "\n")
		}
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
