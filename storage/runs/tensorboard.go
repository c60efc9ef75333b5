package runs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/storage"
)

// TensorBoard event files. Every committed step gets one small event file
// under runs/<run>/tensorboard/, written after the step's manifest and
// before run.json records the step, from the values of its metrics shard
// (same names as tags, same wall time): a resumed run rewrites the file of
// a step whose commit it repairs, under the same name, so TensorBoard sees
// one point per committed step, neither lost nor doubled.
//
// A file is named
//
//	events.out.tfevents.<start>.<id>.<host>
//
// with <start> the run's start (Unix seconds, from run.json, the same for
// every file of the run), <id> the step zero-padded to six digits (or
// "eval" for the held-out scores), and <host> the writing machine: names
// sort in step order, as TensorBoard reads them, and a file of the same id
// written by another host (a run resumed elsewhere) is replaced.

// TensorBoardPrefix is the key prefix of a run's TensorBoard event files:
// a local store's directory of it is a TensorBoard log directory.
func TensorBoardPrefix(run string) string { return storage.RunPrefix(run) + "tensorboard/" }

// EvalEventsID names the event file of a run's held-out scores.
const EvalEventsID = "eval"

// eventsPrefix is the key prefix of the event files of one id.
func eventsPrefix(rs *State, id string) string {
	return fmt.Sprintf("%s%s%010d.%s.", TensorBoardPrefix(rs.Run), tfevents.FilePrefix, max(rs.Started.Unix(), 0), id)
}

// PutEvents writes events (after a file-version event) as the event file
// id of the run rs, replacing any file of that id another host wrote.
func PutEvents(ctx context.Context, st storage.Store, rs *State, id string, events []tfevents.Event) error {
	if len(events) == 0 {
		return nil
	}
	var buf bytes.Buffer
	w := tfevents.NewWriter(&buf)
	if err := w.WriteEvent(tfevents.Event{WallTime: events[0].WallTime, FileVersion: tfevents.FileVersion}); err != nil {
		return err
	}
	for _, e := range events {
		if err := w.WriteEvent(e); err != nil {
			return err
		}
	}
	prefix := eventsPrefix(rs, id)
	key := prefix + hostName()
	old, err := st.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("tensorboard events %s: %w", id, err)
	}
	for _, o := range old {
		if o.Key != key {
			if err := st.Delete(ctx, o.Key); err != nil {
				return fmt.Errorf("tensorboard events %s: replace %s: %w", id, o.Key, err)
			}
		}
	}
	if err := st.Put(ctx, key, bytes.NewReader(buf.Bytes())); err != nil {
		return fmt.Errorf("tensorboard events %s: %w", id, err)
	}
	return nil
}

// StepEvent is the TensorBoard event of one step's metrics: every metric
// as a scalar named as in the metrics shard (reward/mean,
// reward/<scenario>/mean, loss/kl, time/rollout_s, …), sorted by name.
func StepEvent(step int, at time.Time, metrics map[string]float64) tfevents.Event {
	names := make([]string, 0, len(metrics))
	for k := range metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	e := tfevents.Event{WallTime: float64(at.UnixMilli()) / 1000, Step: int64(step)}
	for _, k := range names {
		e.Scalars = append(e.Scalars, tfevents.Scalar{Tag: k, Value: float32(metrics[k])})
	}
	return e
}

// PutStepEvents writes the event file of a committed step from its
// metrics and texts (a few of its chains of thought, when known).
func PutStepEvents(ctx context.Context, st storage.Store, rs *State, step int, at time.Time, metrics map[string]float64, texts []tfevents.Text) error {
	e := StepEvent(step, at, metrics)
	e.Texts = texts
	return PutEvents(ctx, st, rs, fmt.Sprintf("%06d", step), []tfevents.Event{e})
}

// PutEvalEvents writes held-out scores (one map of EvalKey's form per
// version) as the run's eval event file: at the step of their version,
// eval/<mode>/<scenario> (the mean partial score) and
// eval_strict/<mode>/<scenario> (the strict accuracy), modes in name
// order, measured at; and, where the store holds the version's sample
// grid of a mode (EvalGridKey), that PNG as the image grid/<mode>.
func PutEvalEvents(ctx context.Context, st storage.Store, rs *State, at time.Time, versions []int, scores []map[string][]reward.Summary) error {
	if len(versions) != len(scores) {
		return fmt.Errorf("eval events: %d versions, %d scores: want one scores per version", len(versions), len(scores))
	}
	wall := float64(at.UnixMilli()) / 1000
	var events []tfevents.Event
	for i, v := range versions {
		e := tfevents.Event{WallTime: wall, Step: int64(v)}
		modes := make([]string, 0, len(scores[i]))
		for m := range scores[i] {
			modes = append(modes, m)
		}
		sort.Strings(modes)
		for _, mode := range modes {
			for _, s := range scores[i][mode] {
				e.Scalars = append(e.Scalars,
					tfevents.Scalar{Tag: "eval/" + mode + "/" + s.Scenario, Value: float32(s.Score)},
					tfevents.Scalar{Tag: "eval_strict/" + mode + "/" + s.Scenario, Value: float32(s.Strict)})
			}
		}
		for _, mode := range modes {
			im, ok, err := gridImage(ctx, st, EvalGridKey(rs.Run, v, mode))
			if err != nil {
				return fmt.Errorf("eval events: %w", err)
			}
			if ok {
				im.Tag = "grid/" + mode
				e.Images = append(e.Images, im)
			}
		}
		events = append(events, e)
	}
	return PutEvents(ctx, st, rs, EvalEventsID, events)
}

// HParamsEventsID names the event file of a run's hyperparameters.
const HParamsEventsID = "hparams"

// PutHParamsEvents writes the run's configuration (cfg, flattened as
// config.Config.Flatten lists it) as the run's hparams event file, which
// TensorBoard's HParams tab reads: every key a hyperparameter, a number
// when its value parses as one, else the value's YAML text. It carries
// the run's start as its time, so writing it again (a resume) writes the
// same file.
func PutHParamsEvents(ctx context.Context, st storage.Store, rs *State, cfg *config.Config) error {
	kvs, err := cfg.Flatten()
	if err != nil {
		return fmt.Errorf("hparams events: %w", err)
	}
	hps := make([]tfevents.HParam, len(kvs))
	for i, kv := range kvs {
		hps[i] = tfevents.HParam{Name: kv.Key, Value: kv.Value}
		if x, err := strconv.ParseFloat(kv.Value, 64); err == nil {
			hps[i].Number = &x
		}
	}
	start := float64(rs.Started.UnixMilli()) / 1000
	e := tfevents.Event{WallTime: start, Plugins: []tfevents.PluginValue{tfevents.HParamsSessionStart(hps, start)}}
	return PutEvents(ctx, st, rs, HParamsEventsID, []tfevents.Event{e})
}

// gridImage reads the PNG at key as an image summary (no tag); ok is
// false when the store has no such object.
func gridImage(ctx context.Context, st storage.Store, key string) (im tfevents.Image, ok bool, err error) {
	r, err := st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return im, false, nil
	}
	if err != nil {
		return im, false, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return im, false, fmt.Errorf("read %s: %w", key, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return im, false, fmt.Errorf("grid %s: %w", key, err)
	}
	im = tfevents.Image{Height: int32(cfg.Height), Width: int32(cfg.Width), Colorspace: 3, PNG: b}
	switch cfg.ColorModel {
	case color.GrayModel, color.Gray16Model:
		im.Colorspace = 1
	case color.RGBAModel, color.NRGBAModel, color.RGBA64Model, color.NRGBA64Model:
		im.Colorspace = 4
	}
	return im, true, nil
}

// hostName is the <host> of event file names: the machine's name, in the
// characters a store key may hold.
func hostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, h)
}
