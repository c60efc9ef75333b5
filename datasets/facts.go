package datasets

import "fmt"

// FactKind says what a fact resolves: a colour, a shape or a count.
type FactKind string

// The kinds of world-knowledge facts.
const (
	FactColor  FactKind = "colour"
	FactShape  FactKind = "shape"
	FactNumber FactKind = "number"
)

// Fact is one entry of the world-knowledge table that reasoning prompts
// draw on: the request names Subject, the reasoning chain states Because,
// and the target uses Value (a Color, a Shape, or a number word).
type Fact struct {
	Kind    FactKind
	Subject string
	Value   string
	Because string
}

// Facts returns the world-knowledge table, in a fixed order. Every fifth
// fact (index 4, 9, …) is held out for the eval split; see FactSplit.
func Facts() []Fact {
	return []Fact{
		{FactColor, "the fruit monkeys love", "yellow", "monkeys love bananas, and bananas are yellow"},
		{FactColor, "a ripe tomato", "red", "a ripe tomato is red"},
		{FactColor, "the clear sky at noon", "blue", "the clear sky at noon is blue"},
		{FactColor, "fresh grass", "green", "fresh grass is green"},
		{FactColor, "a carrot", "orange", "a carrot is orange"},
		{FactColor, "a lemon", "yellow", "a lemon is yellow"},
		{FactColor, "an emerald", "green", "an emerald is green"},
		{FactColor, "a sapphire", "blue", "a sapphire is blue"},
		{FactColor, "a ruby", "red", "a ruby is red"},
		{FactColor, "an amethyst", "purple", "an amethyst is purple"},
		{FactColor, "a pumpkin", "orange", "a pumpkin is orange"},
		{FactColor, "a fire truck", "red", "a fire truck is red"},
		{FactColor, "a frog", "green", "a frog is green"},
		{FactColor, "the deep ocean", "blue", "the deep ocean is blue"},
		{FactColor, "a stop sign", "red", "a stop sign is red"},
		{FactColor, "the traffic light that means go", "green", "the traffic light that means go is green"},
		{FactColor, "a lime", "green", "a lime is green"},
		{FactColor, "a plum", "purple", "a plum is purple"},
		{FactColor, "an eggplant", "purple", "an eggplant is purple"},
		{FactColor, "a tangerine", "orange", "a tangerine is orange"},
		{FactColor, "a strawberry", "red", "a strawberry is red"},
		{FactColor, "a blueberry", "blue", "a blueberry is blue"},
		{FactColor, "a canary", "yellow", "a canary is yellow"},
		{FactColor, "lavender flowers", "purple", "lavender flowers are purple"},
		{FactColor, "a cucumber", "green", "a cucumber is green"},
		{FactColor, "a goldfish", "orange", "a goldfish is orange"},
		{FactColor, "a school bus", "yellow", "a school bus is yellow"},
		{FactColor, "a cherry", "red", "a cherry is red"},
		{FactColor, "a bunch of dark grapes", "purple", "dark grapes are purple"},
		{FactColor, "a basketball", "orange", "a basketball is orange"},
		{FactColor, "a dandelion flower", "yellow", "a dandelion flower is yellow"},
		{FactColor, "a pine tree", "green", "a pine tree is green"},
		{FactColor, "a swimming pool", "blue", "the water of a swimming pool looks blue"},
		{FactColor, "a fox", "orange", "a fox is orange"},
		{FactColor, "a violet flower", "purple", "a violet flower is purple"},
		{FactColor, "fresh blood", "red", "fresh blood is red"},
		{FactColor, "an ear of corn", "yellow", "an ear of corn is yellow"},
		{FactColor, "a peacock feather", "blue", "a peacock feather is mostly blue"},
		{FactColor, "a broccoli head", "green", "a broccoli head is green"},
		{FactColor, "the sun in a child drawing", "yellow", "children draw the sun yellow"},
		{FactShape, "a wheel", "circle", "a wheel is round like a circle"},
		{FactShape, "a coin", "circle", "a coin is round like a circle"},
		{FactShape, "the full moon", "circle", "the full moon looks like a circle"},
		{FactShape, "a clock face", "circle", "a clock face is round like a circle"},
		{FactShape, "a tile of a chessboard", "square", "a tile of a chessboard is a square"},
		{FactShape, "a face of a dice", "square", "a face of a dice is a square"},
		{FactShape, "a sticky note", "square", "a sticky note is a square"},
		{FactShape, "a pyramid seen from the side", "triangle", "a pyramid seen from the side is a triangle"},
		{FactShape, "a slice of pizza", "triangle", "a slice of pizza is a triangle"},
		{FactShape, "a sail", "triangle", "a sail is a triangle"},
		{FactShape, "a kite", "diamond", "a kite looks like a diamond"},
		{FactShape, "a baseball infield", "diamond", "a baseball infield is a diamond"},
		{FactShape, "a plus sign", "cross", "a plus sign is a cross"},
		{FactShape, "a first aid sign", "cross", "a first aid sign shows a cross"},
		{FactNumber, "a bicycle has wheels", "two", "a bicycle has two wheels"},
		{FactNumber, "a tricycle has wheels", "three", "a tricycle has three wheels"},
		{FactNumber, "a tripod has legs", "three", "a tripod has three legs"},
		{FactNumber, "a car has wheels", "four", "a car has four wheels"},
		{FactNumber, "a triangle has sides", "three", "a triangle has three sides"},
		{FactNumber, "a dog has legs", "four", "a dog has four legs"},
		{FactNumber, "a square has corners", "four", "a square has four corners"},
		{FactNumber, "a person has eyes", "two", "a person has two eyes"},
		{FactNumber, "a bird has wings", "two", "a bird has two wings"},
		{FactNumber, "a unicorn has horns", "one", "a unicorn has one horn"},
		{FactNumber, "a unicycle has wheels", "one", "a unicycle has one wheel"},
		{FactNumber, "a year has seasons", "four", "a year has four seasons"},
		{FactNumber, "a chicken has legs", "two", "a chicken has two legs"},
		{FactNumber, "a dromedary has humps", "one", "a dromedary has one hump"},
		{FactNumber, "a lucky clover has leaves", "four", "a lucky clover has four leaves"},
		{FactNumber, "a traffic light has lamps", "three", "a traffic light has three lamps"},
		{FactNumber, "a motorbike has wheels", "two", "a motorbike has two wheels"},
	}
}

// FactSplit is the split a fact (by its index in Facts) belongs to.
func FactSplit(i int) Split {
	if i%5 == 4 {
		return Eval
	}
	return Train
}

// The text-only questions about a fact (FactQuestions), by kind: several
// phrasings, written only with words the image rows already use, so that
// they add nothing to the vocabulary.
var (
	factColorQuestions = []string{
		"the colour of {subject}.",
		"write the colour of {subject}.",
		"the colour of {subject}, please.",
		"i would like the colour of {subject}.",
	}
	factShapeQuestions = []string{
		"the shape of {subject}.",
		"write the shape of {subject}.",
		"a shape like {subject}, please.",
		"the shape that looks like {subject}.",
	}
	factNumberQuestions = []string{
		"{subject}.",
		"as many as {subject}.",
		"write as many as {subject}.",
	}
	factChain  = "{because}."
	factAnswer = "{value}."
)

// FactQuestions returns the text-only questions about every fact of the
// table — no image, no scene — in a fixed order: for each fact (in Facts
// order) each phrasing of its kind. A question's Think is the fact's
// Because, its Answer the fact's Value. They teach the MLLM the world
// knowledge as text during its warm-up, as a VLM's pre-training does,
// held-back facts included (FactSplit): the image rows of the train split
// never show a held-back fact, so the eval split's knowledge rows test
// whether the chain of thought applies knowledge the image pipeline never
// saw. Each row's ID is fact-<fact index>-<phrasing>, its Task "fact", its
// Split the fact's, and its Scenario, Spec and images are empty.
func FactQuestions() []Row {
	var rows []Row
	for i, f := range Facts() {
		var qs []string
		switch f.Kind {
		case FactColor:
			qs = factColorQuestions
		case FactShape:
			qs = factShapeQuestions
		case FactNumber:
			qs = factNumberQuestions
		}
		for j, q := range qs {
			rows = append(rows, Row{
				ID:     fmt.Sprintf("fact-%02d-%d", i, j),
				Split:  FactSplit(i),
				Task:   "fact",
				Prompt: fill(q, "subject", f.Subject),
				Think:  fill(factChain, "because", f.Because),
				Answer: fill(factAnswer, "value", f.Value),
			})
		}
	}
	return rows
}

// FactIndex returns the index in Facts of the fact a FactQuestions row
// asks about, or −1 for any other row.
func FactIndex(r Row) int {
	var i, j int
	if _, err := fmt.Sscanf(r.ID, "fact-%d-%d", &i, &j); err != nil || i < 0 || i >= len(Facts()) {
		return -1
	}
	return i
}
