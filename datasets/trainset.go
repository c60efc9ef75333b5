package datasets

import (
	"fmt"
	"slices"
)

// TrainSet is a user's dataset that a run takes its prompts from instead
// of generating them (config data.dataset): the rows of a dataset file
// with the schema this package writes, checked by NewTrainSet.
type TrainSet struct {
	rows       []Row
	byScenario map[string][]Row
}

// NewTrainSet checks the first n rows of a dataset file (info from its
// schema) as the train prompts of a model drawing imageSize images and
// returns them as a TrainSet. It refuses, naming the row (its index and
// id) and column, a file of another image size, fewer than n rows,
// duplicate ids, unknown scenarios, empty prompts, and editing or
// reflection rows without their reference image.
func NewTrainSet(rows []Row, info Info, imageSize, n int) (*TrainSet, error) {
	switch {
	case info.ImageSize != imageSize:
		return nil, fmt.Errorf("its images are %d pixels (schema metadata %s) and the model draws %d (model.dit.image_size)", info.ImageSize, MetaImageSize, imageSize)
	case n <= 0:
		return nil, fmt.Errorf("data.train_size %d: want > 0", n)
	case len(rows) < n:
		return nil, fmt.Errorf("it has %d rows and data.train_size asks for %d: set data.train_size to at most %d", len(rows), n, len(rows))
	}
	rows = rows[:n]
	s := &TrainSet{rows: rows, byScenario: map[string][]Row{}}
	seen := map[string]int{}
	for i, r := range rows {
		where := fmt.Sprintf("row %d (%s %q)", i, ColID, r.ID)
		if j, ok := seen[r.ID]; ok {
			return nil, fmt.Errorf("%s: the same %s as row %d", where, ColID, j)
		}
		seen[r.ID] = i
		switch {
		case r.ID == "":
			return nil, fmt.Errorf("row %d: column %s is empty", i, ColID)
		case !slices.Contains(AllScenarios, r.Scenario):
			return nil, fmt.Errorf("%s: column %s is %q, want one of %v", where, ColScenario, r.Scenario, AllScenarios)
		case r.Prompt == "":
			return nil, fmt.Errorf("%s: column %s is empty", where, ColPrompt)
		case (r.Scenario == Editing || r.Scenario == Reflection) && len(r.Reference) == 0:
			return nil, fmt.Errorf("%s: a %s row needs the image it starts from in column %s", where, r.Scenario, ColReferencePNG)
		}
		s.byScenario[r.Scenario] = append(s.byScenario[r.Scenario], r)
	}
	return s, nil
}

// Len is the number of rows the run uses.
func (s *TrainSet) Len() int { return len(s.rows) }

// Rows returns the prompts at the indices idx of a phase whose scenario
// mix is mix (config.PhaseMix), as generated rows follow it: index i
// takes the scenario ScenarioCycle(mix) gives it, and the next row of
// that scenario in file order, wrapping around. A scenario the mix asks
// for and the set lacks is an error naming it.
func (s *TrainSet) Rows(mix map[string]float64, idx []int64) ([]Row, error) {
	cycle := ScenarioCycle(mix)
	if len(cycle) == 0 {
		return nil, fmt.Errorf("the scenario mix has no scenario of positive weight")
	}
	count := map[string]int64{}
	for _, sc := range cycle {
		count[sc]++
		if len(s.byScenario[sc]) == 0 {
			return nil, fmt.Errorf("data.dataset has no %s rows, which the phase's scenario mix asks for (give it weight 0, or add such rows)", sc)
		}
	}
	out := make([]Row, len(idx))
	n := int64(len(cycle))
	for i, k := range idx {
		if k < 0 {
			return nil, fmt.Errorf("train row %d: negative index", k)
		}
		sc := cycle[k%n]
		occ := k/n*count[sc] + int64(rank(cycle, int(k%n)))
		rows := s.byScenario[sc]
		out[i] = rows[occ%int64(len(rows))]
	}
	return out, nil
}
