package datasets

import "math"

// Check is the outcome of matching a list of objects (a scene's, or what a
// detector found in an image) against a spec's requirements, GenEval-style.
type Check struct {
	// Credit holds each requirement's partial credit in [0, 1].
	Credit []float64
	// Partial is the mean credit; 1 when there are no requirements.
	Partial float64
	// Strict reports whether every requirement is fully met.
	Strict bool
}

// CheckRequirements scores objects against requirements with GenEval's
// partial credit. For each requirement, let n be the number of objects of
// its shape: the count check earns max(0, 1 − |Count − n|/Count); only if
// the count is exact do the other checks it names earn credit — colour and
// size (the fraction of the n objects that have it), cell (the object is in
// it) and relation (every object lies strictly on that side of every
// object of the referenced requirement, by grid column or row). The
// requirement's credit is the mean of its checks. Objects of shapes no
// requirement names are ignored, as GenEval ignores other classes.
func CheckRequirements(reqs []Requirement, objs []Object) Check {
	byShape := make(map[Shape][]Object)
	for _, o := range objs {
		byShape[o.Shape] = append(byShape[o.Shape], o)
	}
	c := Check{Credit: make([]float64, len(reqs)), Partial: 1, Strict: true}
	if len(reqs) == 0 {
		return c
	}
	sum := 0.0
	for i, r := range reqs {
		found := byShape[r.Shape]
		n := len(found)
		if r.Count <= 0 {
			c.Credit[i] = 0
			c.Strict = false
			continue
		}
		countOK := n == r.Count
		checks := []float64{math.Max(0, 1-math.Abs(float64(r.Count-n))/float64(r.Count))}
		frac := func(ok func(Object) bool) float64 {
			if !countOK {
				return 0
			}
			k := 0
			for _, o := range found {
				if ok(o) {
					k++
				}
			}
			return float64(k) / float64(n)
		}
		if r.Color != "" {
			checks = append(checks, frac(func(o Object) bool { return o.Color == r.Color }))
		}
		if r.Size != "" {
			checks = append(checks, frac(func(o Object) bool { return o.Size == r.Size }))
		}
		if r.Cell != nil {
			checks = append(checks, frac(func(o Object) bool { return o.Cell == *r.Cell }))
		}
		if r.Relation != nil {
			ok := 0.0
			if countOK && r.Relation.Ref >= 0 && r.Relation.Ref < len(reqs) {
				ref := byShape[reqs[r.Relation.Ref].Shape]
				if len(ref) > 0 && related(r.Relation.Kind, found, ref) {
					ok = 1
				}
			}
			checks = append(checks, ok)
		}
		credit := 0.0
		for _, x := range checks {
			credit += x
		}
		credit /= float64(len(checks))
		c.Credit[i] = credit
		sum += credit
		if credit < 1 {
			c.Strict = false
		}
	}
	c.Partial = sum / float64(len(reqs))
	return c
}

// related reports whether every object of a lies strictly on the kind side
// of every object of b.
func related(kind string, a, b []Object) bool {
	for _, p := range a {
		for _, q := range b {
			var ok bool
			switch kind {
			case LeftOf:
				ok = p.Col < q.Col
			case RightOf:
				ok = p.Col > q.Col
			case Above:
				ok = p.Row < q.Row
			case Below:
				ok = p.Row > q.Row
			}
			if !ok {
				return false
			}
		}
	}
	return true
}
