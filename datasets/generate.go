package datasets

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
)

// The five scenarios, the values of the scenario column.
const (
	Composition = "composition"
	Reasoning   = "reasoning"
	Text        = "text"
	Editing     = "editing"
	Reflection  = "reflection"
)

// AllScenarios lists the scenarios in the order rows cycle through them.
var AllScenarios = []string{Composition, Reasoning, Text, Editing, Reflection}

// Row is one example of the dataset.
type Row struct {
	ID       string
	Split    Split
	Scenario string
	// Task is the scenario's sub-kind: e.g. "counting", "knowledge", "recolour".
	Task string
	// Prompt is the user's request.
	Prompt string
	// Think is the reasoning chain written inside <think>…</think> (reasoning
	// rows); empty otherwise.
	Think string
	// Answer is what the MLLM writes after </think>: the caption that fully
	// specifies the target for the DiT, or (editing, reflection) the
	// canonical edit instruction.
	Answer string
	// Spec is the target: its scene is rendered as Target.
	Spec Spec
	// Target is the PNG of the target image; Reference the PNG of the
	// reference image (editing: the image to edit; reflection: the flawed
	// image), empty otherwise.
	Target, Reference []byte
	// RefScene is the scene of Reference, when there is one.
	RefScene *Scene
}

// Options configure generation.
type Options struct {
	// Seed fixes every row: row i of a split depends only on (Seed, Split, i).
	Seed uint64
	// Split is Train, Eval or EvalID; empty means Train.
	Split Split
	// Size is the image side in pixels; 0 means DefaultImageSize.
	Size int
	// Scenarios rows cycle through; empty means AllScenarios.
	Scenarios []string
}

func (o Options) normalize() (Options, error) {
	if o.Split == "" {
		o.Split = Train
	}
	if _, err := ParseSplit(string(o.Split)); err != nil {
		return o, fmt.Errorf("options: split: %w", err)
	}
	if o.Size == 0 {
		o.Size = DefaultImageSize
	}
	if o.Size < MinImageSize || o.Size > MaxImageSize {
		return o, fmt.Errorf("options: size %d, want %d..%d", o.Size, MinImageSize, MaxImageSize)
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = AllScenarios
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return o, fmt.Errorf("options: unknown scenario %q (want one of %s)", s, strings.Join(AllScenarios, ", "))
		}
	}
	return o, nil
}

// Generate returns rows start … start+n−1 of the split.
func Generate(opts Options, start, n int) ([]Row, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, n)
	enc := newPNGEncoder()
	for i := start; i < start+n; i++ {
		r, err := generateRow(opts, i, enc)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// GenerateRow returns row i of the split.
func GenerateRow(opts Options, i int) (Row, error) {
	opts, err := opts.normalize()
	if err != nil {
		return Row{}, err
	}
	return generateRow(opts, i, newPNGEncoder())
}

// maxTries bounds rejection sampling; generators succeed far sooner.
const maxTries = 10000

func generateRow(opts Options, i int, enc *png.Encoder) (Row, error) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", opts.Split, i)
	rng := rand.New(rand.NewPCG(opts.Seed, h.Sum64()))
	scenario := opts.Scenarios[i%len(opts.Scenarios)]
	g := &gen{rng: rng, split: opts.Split}
	var (
		r   Row
		err error
	)
	for range maxTries {
		switch scenario {
		case Composition:
			r, err = g.composition()
		case Reasoning:
			r, err = g.reasoning()
		case Text:
			r, err = g.text()
		case Editing:
			r, err = g.editing()
		case Reflection:
			r, err = g.reflection()
		}
		if err == nil && g.accept(r) {
			break
		}
		err = errRejected
	}
	if err != nil {
		return Row{}, fmt.Errorf("generate %s row %d (%s): %w", opts.Split, i, scenario, err)
	}
	r.ID = fmt.Sprintf("%s-%07d", opts.Split, i)
	r.Split = opts.Split
	r.Scenario = scenario
	if err := r.Spec.Validate(); err != nil {
		return Row{}, fmt.Errorf("generate row %s: %w", r.ID, err)
	}
	if r.Target, err = renderPNG(enc, r.Spec.Scene, opts.Size); err != nil {
		return Row{}, fmt.Errorf("generate row %s: target: %w", r.ID, err)
	}
	if r.RefScene != nil {
		if r.Reference, err = renderPNG(enc, *r.RefScene, opts.Size); err != nil {
			return Row{}, fmt.Errorf("generate row %s: reference: %w", r.ID, err)
		}
	}
	return r, nil
}

var errRejected = fmt.Errorf("no acceptable row in %d tries", maxTries)

func renderPNG(enc *png.Encoder, sc Scene, size int) ([]byte, error) {
	img, err := Render(sc, size)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// onePool keeps one PNG encoder buffer for a single goroutine's reuse.
type onePool struct{ b *png.EncoderBuffer }

func (p *onePool) Get() *png.EncoderBuffer  { b := p.b; p.b = nil; return b }
func (p *onePool) Put(b *png.EncoderBuffer) { p.b = b }

func newPNGEncoder() *png.Encoder { return &png.Encoder{BufferPool: &onePool{}} }

// EncodePNG encodes an image as PNG.
func EncodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// WritePNG writes img as a PNG file at path; errors name the file.
func WritePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// gen draws the content of one row.
type gen struct {
	rng   *rand.Rand
	split Split
	// fact is the index of the fact a knowledge row used, or −1.
	fact int
}

// accept enforces the split: a train or eval-id row shows no held-out
// pair, string or fact anywhere; an eval row shows at least one in its
// target.
func (g *gen) accept(r Row) bool {
	held := heldOut(r.Spec.Scene) || reqsHeldOut(r.Spec.Require)
	refHeld := r.RefScene != nil && heldOut(*r.RefScene)
	factHeld := g.fact >= 0 && FactSplit(g.fact) == Eval
	if g.split != Eval {
		return !held && !refHeld && !factHeld
	}
	if g.fact >= 0 {
		return factHeld
	}
	return held
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func (g *gen) lead() string { return pick(g.rng, leads) }

func (g *gen) object(c Cell) Object {
	return Object{Shape: pick(g.rng, AllShapes), Color: pick(g.rng, AllColors), Size: pick(g.rng, AllSizes), Cell: c}
}

// cells returns all grid cells in a random order.
func (g *gen) cells() []Cell {
	cs := make([]Cell, 0, MaxObjects)
	for r := range GridSize {
		for c := range GridSize {
			cs = append(cs, Cell{r, c})
		}
	}
	g.rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	return cs
}

// shapes returns n distinct shapes in a random order.
func (g *gen) shapes(n int) []Shape {
	s := slices.Clone(AllShapes)
	g.rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s[:n]
}

// place builds a scene meeting reqs: each requirement's objects get its
// colour and size when set (random otherwise) and cells that satisfy its
// cell and relation. It fails when no placement is found.
func (g *gen) place(reqs []Requirement) (Scene, error) {
	for range 200 {
		cs := g.cells()
		var objs []Object
		for _, r := range reqs {
			for range r.Count {
				o := Object{Shape: r.Shape, Color: r.Color, Size: r.Size}
				if o.Color == "" {
					o.Color = pick(g.rng, AllColors)
				}
				if o.Size == "" {
					o.Size = pick(g.rng, AllSizes)
				}
				if r.Cell != nil {
					o.Cell = *r.Cell
					cs = slices.DeleteFunc(cs, func(c Cell) bool { return c == o.Cell })
				}
				objs = append(objs, o)
			}
		}
		k := 0
		for i := range objs {
			if !reqHasCell(reqs, objs[i].Shape) {
				if k >= len(cs) {
					break
				}
				objs[i].Cell = cs[k]
				k++
			}
		}
		sc := Scene{Objects: sortedObjects(objs)}
		if sc.Validate() == nil && CheckRequirements(reqs, sc.Objects).Strict {
			return sc, nil
		}
	}
	return Scene{}, errRejected
}

func reqHasCell(reqs []Requirement, s Shape) bool {
	for _, r := range reqs {
		if r.Shape == s {
			return r.Cell != nil
		}
	}
	return false
}

// sortedObjects returns the objects in reading order (row, then column).
func sortedObjects(objs []Object) []Object {
	out := slices.Clone(objs)
	slices.SortFunc(out, func(a, b Object) int {
		if a.Row != b.Row {
			return a.Row - b.Row
		}
		return a.Col - b.Col
	})
	return out
}

// composition draws a GenEval-like request: single object, two objects,
// counting, colour attribution or position.
func (g *gen) composition() (Row, error) {
	g.fact = -1
	task := pick(g.rng, []string{"single", "two", "counting", "attributes", "position"})
	var reqs []Requirement
	switch task {
	case "single":
		s := g.shapes(1)
		r := Requirement{Count: 1, Shape: s[0], Color: pick(g.rng, AllColors)}
		if g.rng.IntN(2) == 0 {
			r.Size = pick(g.rng, AllSizes)
		}
		reqs = []Requirement{r}
	case "two":
		s := g.shapes(2)
		reqs = []Requirement{{Count: 1, Shape: s[0], Color: pick(g.rng, AllColors)}, {Count: 1, Shape: s[1], Color: pick(g.rng, AllColors)}}
	case "counting":
		s := g.shapes(1)
		r := Requirement{Count: 2 + g.rng.IntN(MaxCount-1), Shape: s[0]}
		if g.rng.IntN(2) == 0 {
			r.Color = pick(g.rng, AllColors)
		}
		reqs = []Requirement{r}
	case "attributes":
		n := 2 + g.rng.IntN(2)
		for _, s := range g.shapes(n) {
			reqs = append(reqs, Requirement{Count: 1 + g.rng.IntN(2), Shape: s, Color: pick(g.rng, AllColors), Size: pick(g.rng, AllSizes)})
		}
	case "position":
		s := g.shapes(2)
		reqs = []Requirement{
			{Count: 1 + g.rng.IntN(2), Shape: s[0], Color: pick(g.rng, AllColors), Relation: &Relation{Kind: pick(g.rng, AllRelations), Ref: 1}},
			{Count: 1, Shape: s[1], Color: pick(g.rng, AllColors)},
		}
	}
	sc, err := g.place(reqs)
	if err != nil {
		return Row{}, err
	}
	return Row{Task: task, Prompt: g.request(reqs), Answer: Caption(sc), Spec: Spec{Scene: sc, Require: reqs}}, nil
}

// request phrases requirements as a user would.
func (g *gen) request(reqs []Requirement) string {
	if len(reqs) == 2 && reqs[0].Relation != nil {
		return fill(pick(g.rng, relationTemplates), "lead", g.lead(), "subject", group(reqs[0]),
			"relation", relationPhrases[reqs[0].Relation.Kind], "object", group(reqs[1]))
	}
	groups := make([]string, len(reqs))
	for i, r := range reqs {
		groups[i] = group(r)
	}
	return fill(pick(g.rng, compositionTemplates), "lead", g.lead(), "groups", joinList(groups))
}

// reasoning draws a request that needs knowledge, arithmetic, spatial
// reasoning or logic (negation, comparison) to resolve.
func (g *gen) reasoning() (Row, error) {
	g.fact = -1
	task := pick(g.rng, []string{"knowledge", "arithmetic", "spatial", "logic"})
	var (
		reqs          []Requirement
		prompt, think string
	)
	lead := g.lead()
	switch task {
	case "knowledge":
		facts := Facts()
		g.fact = g.rng.IntN(len(facts))
		f := facts[g.fact]
		switch f.Kind {
		case FactColor:
			s := pick(g.rng, AllShapes)
			reqs = []Requirement{{Count: 1, Shape: s, Color: Color(f.Value)}}
			prompt = fill(pick(g.rng, knowledgeColorTemplates), "lead", lead, "shape", string(s), "subject", f.Subject)
			think = fill(knowledgeColorChain, "because", f.Because, "shape", string(s), "color", f.Value)
		case FactShape:
			c := pick(g.rng, AllColors)
			reqs = []Requirement{{Count: 1, Shape: Shape(f.Value), Color: c}}
			prompt = fill(pick(g.rng, knowledgeShapeTemplates), "lead", lead, "color", string(c), "subject", f.Subject)
			think = fill(knowledgeShapeChain, "because", f.Because, "shape", f.Value)
		case FactNumber:
			c, s := pick(g.rng, AllColors), pick(g.rng, AllShapes)
			n := slices.Index(numberWords, f.Value) + 1
			reqs = []Requirement{{Count: n, Shape: s, Color: c}}
			prompt = fill(pick(g.rng, knowledgeNumberTemplates), "lead", lead, "color", string(c), "shapes", s.Plural(), "subject", f.Subject)
			think = fill(knowledgeNumberChain, "because", f.Because, "n", f.Value, "color", string(c), "shapes", pluralFor(s, n))
		}
	case "arithmetic":
		c, s := pick(g.rng, AllColors), pick(g.rng, AllShapes)
		op := pick(g.rng, []string{"more", "fewer", "sum", "twice"})
		var a, b, n int
		switch op {
		case "more":
			a = 1 + g.rng.IntN(MaxCount-1)
			n = a + 1
		case "fewer":
			a = 2 + g.rng.IntN(MaxCount-1)
			n = a - 1
		case "sum":
			a = 1 + g.rng.IntN(MaxCount-1)
			b = 1 + g.rng.IntN(MaxCount-a)
			n = a + b
		case "twice":
			a = 1 + g.rng.IntN(MaxCount/2)
			n = 2 * a
		}
		t := arithmeticTemplates[op]
		bw := ""
		if b > 0 {
			bw = number(b)
		}
		kv := []string{"lead", lead, "a", number(a), "b", bw, "n", number(n), "color", string(c), "shapes", s.Plural()}
		prompt = fill(t.prompt, kv...)
		kv[len(kv)-1] = pluralFor(s, n)
		think = fill(t.chain+arithmeticChainEnd, kv...)
		reqs = []Requirement{{Count: n, Shape: s, Color: c}}
	case "spatial":
		sh := g.shapes(2)
		c1, c2 := pick(g.rng, AllColors), pick(g.rng, AllColors)
		dir := pick(g.rng, directions)
		from := Cell{g.rng.IntN(GridSize), g.rng.IntN(GridSize)}
		to, ok := move(from, dir)
		if !ok {
			return Row{}, errRejected
		}
		reqs = []Requirement{{Count: 1, Shape: sh[0], Color: c1, Cell: &from}, {Count: 1, Shape: sh[1], Color: c2, Cell: &to}}
		prompt = fill(spatialTemplate, "lead", lead, "color", string(c1), "shape", string(sh[0]), "cell", from.String(),
			"color2", string(c2), "shape2", string(sh[1]), "direction", dir)
		think = fill(spatialChain, "shape", string(sh[0]), "cell", from.String(), "direction", dir, "cell2", to.String(), "shape2", string(sh[1]))
	case "logic":
		s := pick(g.rng, AllShapes)
		if g.rng.IntN(2) == 0 { // negation
			c := pick(g.rng, AllColors)
			var others []string
			var all []string
			for _, x := range AllColors {
				all = append(all, string(x))
				if x != c {
					others = append(others, string(x))
				}
			}
			g.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
			reqs = []Requirement{{Count: 1, Shape: s, Color: c}}
			prompt = fill(negationTemplate, "lead", lead, "shape", string(s), "colors", joinOr(others))
			think = fill(negationChain, "all", joinList(all), "colors", joinList(others), "color", string(c), "shape", string(s))
			task = "negation"
		} else {
			c := pick(g.rng, AllColors)
			a, b := 1+g.rng.IntN(MaxCount), 1+g.rng.IntN(MaxCount)
			if a == b {
				return Row{}, errRejected
			}
			which := pick(g.rng, comparatives)
			n := max(a, b)
			if which == "smaller" {
				n = min(a, b)
			}
			reqs = []Requirement{{Count: n, Shape: s, Color: c}}
			prompt = fill(comparisonTemplate, "lead", lead, "color", string(c), "shapes", s.Plural(), "which", which, "a", number(a), "b", number(b))
			think = fill(comparisonChain, "which", which, "a", number(a), "b", number(b), "n", number(n), "color", string(c), "shapes", pluralFor(s, n))
			task = "comparison"
		}
	}
	sc, err := g.place(reqs)
	if err != nil {
		return Row{}, err
	}
	return Row{Task: task, Prompt: prompt, Think: think, Answer: Caption(sc), Spec: Spec{Scene: sc, Require: reqs}}, nil
}

func pluralFor(s Shape, n int) string {
	if n == 1 {
		return string(s)
	}
	return s.Plural()
}

func joinOr(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// move returns the cell in direction dir of c.
func move(c Cell, dir string) (Cell, bool) {
	to := c
	switch dir {
	case "directly above":
		to.Row--
	case "directly below":
		to.Row++
	case "directly left of":
		to.Col--
	case "directly right of":
		to.Col++
	case "diagonally opposite":
		to = Cell{GridSize - 1 - c.Row, GridSize - 1 - c.Col}
	}
	return to, to.Valid() && to != c
}

func (g *gen) randomText() string {
	n := 1 + g.rng.IntN(MaxTextLen)
	b := make([]byte, n)
	for i := range b {
		b[i] = TextAlphabet[g.rng.IntN(len(TextAlphabet))]
	}
	return string(b)
}

// text draws a text-rendering request.
func (g *gen) text() (Row, error) {
	g.fact = -1
	s := g.randomText()
	sc := Scene{Text: s}
	prompt := fill(pick(g.rng, textTemplates), "lead", g.lead(), "quoted", quote(s))
	return Row{Task: fmt.Sprintf("len%d", len(s)), Prompt: prompt, Answer: Caption(sc), Spec: Spec{Scene: sc}}, nil
}

// randomScene draws 1..4 objects in distinct cells.
func (g *gen) randomScene() Scene {
	n := 1 + g.rng.IntN(4)
	cs := g.cells()
	objs := make([]Object, n)
	for i := range objs {
		objs[i] = g.object(cs[i])
	}
	return Scene{Objects: sortedObjects(objs)}
}

// editing draws a reference scene and one edit of it.
func (g *gen) editing() (Row, error) {
	g.fact = -1
	op := pick(g.rng, []string{"add", "remove", "recolour", "move", "change-text"})
	if op == "change-text" {
		old, s := g.randomText(), g.randomText()
		if old == s {
			return Row{}, errRejected
		}
		ref, tgt := Scene{Text: old}, Scene{Text: s}
		prompt := fill(pick(g.rng, retextTemplates), "quoted", quote(s), "old", quote(old))
		answer := fill(retextInstruction, "old", quote(old), "quoted", quote(s))
		return Row{Task: op, Prompt: prompt, Answer: answer, Spec: Spec{Scene: tgt}, RefScene: &ref}, nil
	}
	ref := g.randomScene()
	e, err := g.edit(op, ref)
	if err != nil {
		return Row{}, err
	}
	return Row{Task: op, Prompt: e.request, Answer: e.instruction, Spec: Spec{Scene: e.target}, RefScene: &ref}, nil
}

type edit struct {
	target               Scene
	request, instruction string
}

func freeCells(sc Scene, cs []Cell) []Cell {
	return slices.DeleteFunc(slices.Clone(cs), func(c Cell) bool {
		return slices.ContainsFunc(sc.Objects, func(o Object) bool { return o.Cell == c })
	})
}

// edit applies op to a random object of ref (or a free cell for "add").
func (g *gen) edit(op string, ref Scene) (edit, error) {
	objs := slices.Clone(ref.Objects)
	if op == "add" {
		free := freeCells(ref, g.cells())
		if len(free) == 0 {
			return edit{}, errRejected
		}
		o := g.object(free[0])
		return g.editAdd(ref, o), nil
	}
	if len(objs) == 0 {
		return edit{}, errRejected
	}
	i := g.rng.IntN(len(objs))
	o := objs[i]
	switch op {
	case "remove":
		return g.editRemove(ref, o), nil
	case "recolour":
		c := pick(g.rng, AllColors)
		if c == o.Color {
			return edit{}, errRejected
		}
		return g.editRecolor(ref, o, c), nil
	case "move":
		free := freeCells(ref, g.cells())
		if len(free) == 0 {
			return edit{}, errRejected
		}
		return g.editMove(ref, o, free[0]), nil
	}
	return edit{}, fmt.Errorf("unknown edit %q", op)
}

func replaceObject(sc Scene, old Object, repl *Object) Scene {
	var out []Object
	for _, o := range sc.Objects {
		if o == old {
			if repl != nil {
				out = append(out, *repl)
			}
			continue
		}
		out = append(out, o)
	}
	return Scene{Objects: sortedObjects(out)}
}

func (g *gen) editAdd(ref Scene, o Object) edit {
	tgt := Scene{Objects: sortedObjects(append(slices.Clone(ref.Objects), o))}
	kv := []string{"object", describe(o), "cell", o.Cell.String()}
	return edit{tgt, fill(pick(g.rng, addTemplates), kv...), fill(addInstruction, kv...)}
}

func (g *gen) editRemove(ref Scene, o Object) edit {
	kv := []string{"desc", g.refer(ref, o), "object", describe(o), "cell", o.Cell.String()}
	return edit{replaceObject(ref, o, nil), fill(pick(g.rng, removeTemplates), kv...), fill(removeInstruction, kv...)}
}

func (g *gen) editRecolor(ref Scene, o Object, c Color) edit {
	n := o
	n.Color = c
	kv := []string{"desc", g.refer(ref, o), "object", describe(o), "cell", o.Cell.String(), "color", string(c)}
	return edit{replaceObject(ref, o, &n), fill(pick(g.rng, recolorTemplates), kv...), fill(recolorInstr, kv...)}
}

func (g *gen) editMove(ref Scene, o Object, to Cell) edit {
	n := o
	n.Cell = to
	kv := []string{"desc", g.refer(ref, o), "object", describe(o), "cell", o.Cell.String(), "cell2", to.String()}
	req := fill(pick(g.rng, moveTemplates), "desc", g.refer(ref, o), "cell", to.String())
	return edit{replaceObject(ref, o, &n), req, fill(moveInstruction, kv...)}
}

// refer is the shortest description that picks o out of sc: "circle",
// "red circle", "large red circle" or "large red circle at top left".
func (g *gen) refer(sc Scene, o Object) string {
	unique := func(match func(Object) bool) bool {
		n := 0
		for _, p := range sc.Objects {
			if match(p) {
				n++
			}
		}
		return n == 1
	}
	switch {
	case unique(func(p Object) bool { return p.Shape == o.Shape }):
		return string(o.Shape)
	case unique(func(p Object) bool { return p.Shape == o.Shape && p.Color == o.Color }):
		return string(o.Color) + " " + string(o.Shape)
	case unique(func(p Object) bool { return p.Shape == o.Shape && p.Color == o.Color && p.Size == o.Size }):
		return describe(o)
	}
	return describe(o) + " at " + o.Cell.String()
}

// reflection draws a composition request, a flawed image of it (an object
// missing, one extra, a wrong colour or a misplaced object) and the edit
// that corrects it.
func (g *gen) reflection() (Row, error) {
	base, err := g.composition()
	if err != nil {
		return Row{}, err
	}
	tgt := base.Spec.Scene
	reqs := base.Spec.Require
	flaws := []string{"missing", "extra", "colour"}
	if slices.ContainsFunc(reqs, func(r Requirement) bool { return r.Relation != nil }) {
		flaws = []string{"position"}
	}
	flaw := pick(g.rng, flaws)
	var flawed Scene
	var fix edit
	switch flaw {
	case "missing":
		o := pick(g.rng, tgt.Objects)
		flawed = replaceObject(tgt, o, nil)
		fix = g.editAdd(flawed, o)
	case "extra":
		free := freeCells(tgt, g.cells())
		if len(free) == 0 {
			return Row{}, errRejected
		}
		o := g.object(free[0])
		o.Shape = pick(g.rng, reqs).Shape
		flawed = Scene{Objects: sortedObjects(append(slices.Clone(tgt.Objects), o))}
		fix = g.editRemove(flawed, o)
	case "colour":
		o := pick(g.rng, tgt.Objects)
		c := pick(g.rng, AllColors)
		if c == o.Color {
			return Row{}, errRejected
		}
		bad := o
		bad.Color = c
		flawed = replaceObject(tgt, o, &bad)
		fix = g.editRecolor(flawed, bad, o.Color)
	case "position":
		o := pick(g.rng, tgt.Objects)
		free := freeCells(tgt, g.cells())
		if len(free) == 0 {
			return Row{}, errRejected
		}
		bad := o
		bad.Cell = free[0]
		flawed = replaceObject(tgt, o, &bad)
		fix = g.editMove(flawed, bad, o.Cell)
	}
	if CheckRequirements(reqs, flawed.Objects).Strict || !slices.Equal(fix.target.Objects, tgt.Objects) {
		return Row{}, errRejected
	}
	return Row{Task: flaw, Prompt: base.Prompt, Answer: fix.instruction, Spec: base.Spec, RefScene: &flawed}, nil
}
