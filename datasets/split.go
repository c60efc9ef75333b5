package datasets

import (
	"fmt"
	"hash/fnv"
)

// Split is a dataset split.
type Split string

// The splits. Eval, the out-of-distribution split, holds back
// combinations Train never shows; EvalID, the in-distribution split, holds
// new scenes of the combinations Train shows: its rows obey Train's rules
// but are drawn from another stream (a row's random stream is derived from
// its split and index), so they are not Train's rows.
const (
	Train  Split = "train"
	Eval   Split = "eval"
	EvalID Split = "eval-id"
)

// AllSplits lists every Split.
var AllSplits = []Split{Train, Eval, EvalID}

// ParseSplit checks a split name.
func ParseSplit(s string) (Split, error) {
	for _, x := range AllSplits {
		if string(x) == s {
			return x, nil
		}
	}
	return "", fmt.Errorf("unknown split %q (want train, eval or eval-id)", s)
}

// Pair is a colour×shape combination.
type Pair struct {
	Color Color
	Shape Shape
}

// HeldOutPairs are the colour×shape pairs no train row shows, in any
// image, requirement or text. Every shape and every colour is held out in
// at least one pair, so eval measures binding known attributes in new
// combinations.
func HeldOutPairs() []Pair {
	return []Pair{
		{Purple, Triangle}, {Green, Circle}, {Orange, Square},
		{Blue, Diamond}, {Red, Cross}, {Yellow, Triangle},
	}
}

// PairSplit is the split that owns a colour×shape pair.
func PairSplit(c Color, s Shape) Split {
	for _, p := range HeldOutPairs() {
		if p.Color == c && p.Shape == s {
			return Eval
		}
	}
	return Train
}

// StringSplit is the split that owns a text string: about one string in
// five, chosen by a hash, belongs to Eval.
func StringSplit(s string) Split {
	h := fnv.New32a()
	h.Write([]byte(s))
	if h.Sum32()%5 == 0 {
		return Eval
	}
	return Train
}

// heldOut reports whether a scene shows a held-out pair or string.
func heldOut(sc Scene) bool {
	for _, o := range sc.Objects {
		if PairSplit(o.Color, o.Shape) == Eval {
			return true
		}
	}
	return sc.Text != "" && StringSplit(sc.Text) == Eval
}

func reqsHeldOut(reqs []Requirement) bool {
	for _, r := range reqs {
		if r.Color != "" && PairSplit(r.Color, r.Shape) == Eval {
			return true
		}
	}
	return false
}
