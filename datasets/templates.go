package datasets

import "strings"

// The templates every prompt, reasoning chain, caption and instruction is
// written from. Slots are {name}; Vocabulary tokenises the literal text of
// every template and every value a slot can take, so a word added here is
// in the vocabulary automatically.
var (
	leads = []string{"draw", "show", "paint", "an image of", "a picture of", "make an image with"}

	compositionTemplates = []string{
		"{lead} {groups}.",
		"{groups}, please.",
		"i would like {groups}.",
	}
	relationTemplates = []string{
		"{lead} {subject} {relation} {object}.",
		"{lead} {subject}, {relation} {object}.",
	}
	relationPhrases = map[string]string{
		LeftOf: "to the left of", RightOf: "to the right of", Above: "above", Below: "below",
	}

	// Reasoning requests and chains, by kind.
	knowledgeColorTemplates  = []string{"{lead} a {shape} in the colour of {subject}.", "{lead} a {shape} coloured like {subject}."}
	knowledgeShapeTemplates  = []string{"{lead} a {color} shape like {subject}.", "{lead} a {color} shape that looks like {subject}."}
	knowledgeNumberTemplates = []string{"{lead} as many {color} {shapes} as {subject}."}
	knowledgeColorChain      = "{because}. so the {shape} is {color}."
	knowledgeShapeChain      = "{because}. so the shape is a {shape}."
	knowledgeNumberChain     = "{because}. so i draw {n} {color} {shapes}."

	arithmeticTemplates = map[string]struct{ prompt, chain string }{
		"more":  {"{lead} one more than {a} {color} {shapes}.", "{a} plus one is {n}."},
		"fewer": {"{lead} one fewer than {a} {color} {shapes}.", "{a} minus one is {n}."},
		"sum":   {"{lead} as many {color} {shapes} as {a} plus {b}.", "{a} plus {b} is {n}."},
		"twice": {"{lead} twice as many {color} {shapes} as {a}.", "two times {a} is {n}."},
	}
	arithmeticChainEnd = " so i draw {n} {color} {shapes}."

	spatialTemplate = "{lead} a {color} {shape} at {cell}, and a {color2} {shape2} {direction} it."
	spatialChain    = "the {shape} is at {cell}. {direction} {cell} is {cell2}. so the {shape2} is at {cell2}."
	directions      = []string{"directly above", "directly below", "directly left of", "directly right of", "diagonally opposite"}

	negationTemplate   = "{lead} a {shape} whose colour is not {colors}."
	negationChain      = "the colours are {all}. without {colors}, only {color} is left. so the {shape} is {color}."
	comparisonTemplate = "{lead} {color} {shapes}, as many as the {which} of {a} and {b}."
	comparisonChain    = "the {which} of {a} and {b} is {n}. so i draw {n} {color} {shapes}."
	comparatives       = []string{"larger", "smaller"}

	textTemplates = []string{
		"{lead} a sign that reads {quoted}.",
		"write {quoted}.",
		"render the text {quoted}.",
		"{lead} the word {quoted}.",
		"a label with {quoted} on it.",
	}
	textCaption = "the text {quoted}."

	// Editing requests (loose) and instructions (canonical).
	addTemplates      = []string{"add a {object} at {cell}.", "put a {object} at {cell}."}
	removeTemplates   = []string{"remove the {desc}.", "delete the {desc}.", "take away the {desc}."}
	recolorTemplates  = []string{"make the {desc} {color}.", "paint the {desc} {color}.", "recolour the {desc} to {color}."}
	moveTemplates     = []string{"move the {desc} to {cell}.", "put the {desc} at {cell} instead."}
	retextTemplates   = []string{"change the text to {quoted}.", "replace {old} with {quoted}."}
	addInstruction    = "add a {object} at {cell}."
	removeInstruction = "remove the {object} at {cell}."
	recolorInstr      = "recolour the {object} at {cell} to {color}."
	moveInstruction   = "move the {object} at {cell} to {cell2}."
	retextInstruction = "change the text {old} to {quoted}."

	objectCaption  = "a {object} at {cell}"
	emptyCaption   = "an empty white image."
	numberWords    = []string{"one", "two", "three", "four"}
	articleWords   = []string{"a", "an"}
	listSeparators = []string{",", "and"}
)

// fill replaces each {key} of tmpl by its value; kv alternates keys and values.
func fill(tmpl string, kv ...string) string {
	pairs := make([]string, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, "{"+kv[i]+"}", kv[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// joinList joins phrases as "a, b and c".
func joinList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

// article is "an" before a vowel sound and "a" otherwise.
func article(next string) string {
	if next != "" && strings.ContainsRune("aeiou", rune(next[0])) {
		return "an"
	}
	return "a"
}

// number is the word for n, 1..MaxCount (the only counts specs allow).
func number(n int) string { return numberWords[n-1] }

func quote(s string) string { return `"` + s + `"` }

// describe is an object's full description: "large red circle".
func describe(o Object) string { return string(o.Size) + " " + string(o.Color) + " " + string(o.Shape) }

// Caption is the canonical caption of a scene, the MLLM's answer for a
// generation request: every object with its size, colour, shape and cell
// in reading order, or the text.
func Caption(sc Scene) string {
	if sc.Text != "" {
		return fill(textCaption, "quoted", quote(sc.Text))
	}
	if len(sc.Objects) == 0 {
		return emptyCaption
	}
	objs := sortedObjects(sc.Objects)
	parts := make([]string, len(objs))
	for i, o := range objs {
		parts[i] = fill(objectCaption, "object", describe(o), "cell", o.Cell.String())
	}
	return joinList(parts) + "."
}

// group phrases a requirement as a request does: "two red circles",
// "an orange square", "a large triangle".
func group(r Requirement) string {
	words := []string{}
	if r.Size != "" {
		words = append(words, string(r.Size))
	}
	if r.Color != "" {
		words = append(words, string(r.Color))
	}
	noun := string(r.Shape)
	if r.Count > 1 {
		noun = r.Shape.Plural()
	}
	words = append(words, noun)
	phrase := strings.Join(words, " ")
	if r.Count == 1 {
		return article(phrase) + " " + phrase
	}
	return number(r.Count) + " " + phrase
}
