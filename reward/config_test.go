package reward

import (
	"context"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
)

func TestFromConfig(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Builtin(nil)))
	defer srv.Close()
	weights := map[string]float64{datasets.Text: 2}
	reg, err := FromConfig(config.Reward{Weights: weights, Remote: map[string]string{datasets.Text: srv.URL, datasets.Editing: srv.URL}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.scorers[datasets.Text].(*Client); !ok || reg.scorers[datasets.Text] != reg.scorers[datasets.Editing] {
		t.Errorf("text and editing scorers %T, %T: want one shared Client", reg.scorers[datasets.Text], reg.scorers[datasets.Editing])
	}
	items := testItems(t, 15)
	got, err := reg.Score(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Builtin(weights).Score(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("a registry with remote text and editing scores differently from the in-process one")
	}
	for _, bad := range []config.Reward{
		{Remote: map[string]string{"painting": srv.URL}},
		{Weights: map[string]float64{"painting": 1}},
	} {
		if _, err := FromConfig(bad); !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), `"painting"`) {
			t.Errorf("FromConfig(%+v): error %v", bad, err)
		}
	}
	if _, err := FromConfig(config.Reward{Remote: map[string]string{datasets.Text: "ftp://x"}}); err == nil || !strings.Contains(err.Error(), "reward.remote.text") {
		t.Errorf("bad URL: error %v", err)
	}
}
