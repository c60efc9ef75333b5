package sweep

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/thinkgen/thinkgen/internal/plots"
)

// Entry is one row of the leaderboard.
type Entry struct {
	// Rank counts from 1 over the trials with an objective; 0 for the rest.
	Rank  int
	Trial *TrialState
}

// Leaderboard ranks the trials: done trials by objective (best first, ties
// by trial index), then early-stopped trials (the later stopped first),
// then failed, running and pending trials by index.
func (s *State) Leaderboard() []Entry {
	group := func(t *TrialState) int {
		switch {
		case t.Status == StatusDone && t.Objective != nil:
			return 0
		case t.Status == StatusStopped:
			return 1
		case t.Status == StatusFailed:
			return 2
		}
		return 3
	}
	ts := make([]*TrialState, len(s.Trials))
	for i := range s.Trials {
		ts[i] = &s.Trials[i]
	}
	slices.SortStableFunc(ts, func(a, b *TrialState) int {
		if ga, gb := group(a), group(b); ga != gb {
			return ga - gb
		}
		if group(a) == 0 && *a.Objective != *b.Objective {
			if s.Objective.Better(*a.Objective, *b.Objective) {
				return -1
			}
			return 1
		}
		if group(a) == 1 && a.Steps != b.Steps {
			return b.Steps - a.Steps // stopped later: closer to the median
		}
		return a.Index - b.Index
	})
	out := make([]Entry, len(ts))
	for i, t := range ts {
		out[i].Trial = t
		if group(t) == 0 {
			out[i].Rank = i + 1
		}
	}
	return out
}

// keys returns the space's keys, in the order of the first trial's
// overrides.
func (s *State) keys() []string {
	if len(s.Trials) == 0 {
		return nil
	}
	var ks []string
	for _, o := range s.Trials[0].Overrides {
		ks = append(ks, o.Key)
	}
	return ks
}

// row is one leaderboard row as text, in the column order of header.
func (s *State) header() []string {
	return append([]string{"rank", "trial", "status", "objective", "steps"}, s.keys()...)
}

func (e Entry) row() []string {
	t := e.Trial
	rank, obj := "-", "-"
	if e.Rank > 0 {
		rank = strconv.Itoa(e.Rank)
	}
	if t.Objective != nil {
		obj = strconv.FormatFloat(*t.Objective, 'f', 4, 64)
	}
	steps := strconv.Itoa(t.Steps)
	if t.TotalSteps > 0 {
		steps += "/" + strconv.Itoa(t.TotalSteps)
	}
	r := []string{rank, t.Name, string(t.Status), obj, steps}
	for _, o := range t.Overrides {
		r = append(r, o.Value)
	}
	return r
}

// WriteTable writes the leaderboard as an aligned table.
func (s *State) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	write := func(cols []string) {
		for i, c := range cols {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	h := s.header()
	h[3] = s.Objective.Metric
	if s.Objective.Score == "strict" {
		h[3] += " (strict)"
	}
	write(h)
	for _, e := range s.Leaderboard() {
		write(e.row())
	}
	return tw.Flush()
}

// WriteCSV writes the leaderboard as CSV with a header row; the objective
// column is empty for trials without one.
func (s *State) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	h := s.header()
	h = append(h[:4:4], append([]string{"steps", "total_steps", "elapsed_s"}, h[5:]...)...)
	if err := cw.Write(h); err != nil {
		return err
	}
	for _, e := range s.Leaderboard() {
		t := e.Trial
		rank, obj := "", ""
		if e.Rank > 0 {
			rank = strconv.Itoa(e.Rank)
		}
		if t.Objective != nil {
			obj = strconv.FormatFloat(*t.Objective, 'g', -1, 64)
		}
		r := []string{rank, t.Name, string(t.Status), obj, strconv.Itoa(t.Steps), strconv.Itoa(t.TotalSteps),
			strconv.FormatFloat(t.Elapsed.Seconds(), 'f', 1, 64)}
		for _, o := range t.Overrides {
			r = append(r, o.Value)
		}
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ArrowSchema is the schema of the leaderboard's Arrow IPC file: rank
// (null when unranked), trial, status, objective (null when unknown),
// steps, total_steps, elapsed_s, then one string column per space key
// holding the trial's --set value.
func (s *State) ArrowSchema() *arrow.Schema {
	fields := []arrow.Field{
		{Name: "rank", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "trial", Type: arrow.BinaryTypes.String},
		{Name: "status", Type: arrow.BinaryTypes.String},
		{Name: "objective", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "steps", Type: arrow.PrimitiveTypes.Int32},
		{Name: "total_steps", Type: arrow.PrimitiveTypes.Int32},
		{Name: "elapsed_s", Type: arrow.PrimitiveTypes.Float64},
	}
	for _, k := range s.keys() {
		fields = append(fields, arrow.Field{Name: k, Type: arrow.BinaryTypes.String})
	}
	md := arrow.NewMetadata([]string{"thinkgen.schema", "thinkgen.sweep", "thinkgen.objective", "thinkgen.direction"},
		[]string{"sweep-leaderboard", s.Name, s.Objective.Metric + ":" + s.Objective.Score, s.Objective.Direction})
	return arrow.NewSchema(fields, &md)
}

// WriteArrow writes the leaderboard as an Arrow IPC file (one record
// batch, rows in rank order).
func (s *State) WriteArrow(w io.WriteSeeker) (err error) {
	schema := s.ArrowSchema()
	fw, err := ipc.NewFileWriter(w, ipc.WithSchema(schema))
	if err != nil {
		return fmt.Errorf("write leaderboard: %w", err)
	}
	defer func() {
		if cerr := fw.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write leaderboard: close: %w", cerr)
		}
	}()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, e := range s.Leaderboard() {
		t := e.Trial
		if e.Rank > 0 {
			b.Field(0).(*array.Int32Builder).Append(int32(e.Rank))
		} else {
			b.Field(0).AppendNull()
		}
		b.Field(1).(*array.StringBuilder).Append(t.Name)
		b.Field(2).(*array.StringBuilder).Append(string(t.Status))
		if t.Objective != nil {
			b.Field(3).(*array.Float64Builder).Append(*t.Objective)
		} else {
			b.Field(3).AppendNull()
		}
		b.Field(4).(*array.Int32Builder).Append(int32(t.Steps))
		b.Field(5).(*array.Int32Builder).Append(int32(t.TotalSteps))
		b.Field(6).(*array.Float64Builder).Append(t.Elapsed.Seconds())
		for i, o := range t.Overrides {
			b.Field(7 + i).(*array.StringBuilder).Append(o.Value)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := fw.Write(rec); err != nil {
		return fmt.Errorf("write leaderboard: %w", err)
	}
	return nil
}

// WritePlot draws the objective of each trial (by trial index) with the
// best value so far, and, when an early-stopping metric was recorded, that
// metric's running mean by step for each trial, into a PNG at path.
func (s *State) WritePlot(path string) error {
	var xs, ys, best []float64
	cur := math.NaN()
	for _, t := range s.Trials {
		xs = append(xs, float64(t.Index))
		y := math.NaN()
		if t.Objective != nil {
			y = *t.Objective
			if math.IsNaN(cur) || s.Objective.Better(y, cur) {
				cur = y
			}
		}
		ys = append(ys, y)
		best = append(best, cur)
	}
	panels := []plots.Panel{{
		Title: "objective per trial: " + s.Objective.Metric, XLabel: "trial", YLabel: s.Objective.Score,
		Series: []plots.Series{{Name: "trial", X: xs, Y: ys, Points: true}, {Name: "best so far", X: xs, Y: best}},
	}}
	var curves []plots.Series
	for _, t := range s.Trials {
		if len(t.Signal) == 0 {
			continue
		}
		sig := t.signal()
		var x, y []float64
		for step := 1; step <= len(sig); step++ {
			if m, ok := RunningMean(sig, step); ok {
				x, y = append(x, float64(step)), append(y, m)
			}
		}
		curves = append(curves, plots.Series{Name: fmt.Sprintf("t%03d", t.Index), X: x, Y: y})
	}
	if len(curves) > 0 {
		panels = append(panels, plots.Panel{Title: "early-stopping metric (running mean)", XLabel: "step", Series: curves})
	}
	if err := plots.Write(path, panels, 2); err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

// signal returns the trial's early-stopping metric by step as float64s.
func (t *TrialState) signal() []float64 {
	out := make([]float64, len(t.Signal))
	for i, v := range t.Signal {
		out[i] = float64(v)
	}
	return out
}

func nan() float64 { return math.NaN() }
