package datasets

import (
	"slices"
	"unicode"
)

// Tokens splits text the way the ShapeWorld tokenizer does: a run of
// lower-case letters is one word; every other non-space character (an
// upper-case letter or digit of a quoted string, punctuation) is a token
// of its own. Spaces separate tokens and are dropped.
func Tokens(s string) []string {
	var out []string
	word := -1
	rs := []rune(s)
	for i, r := range rs {
		if r >= 'a' && r <= 'z' {
			if word < 0 {
				word = i
			}
			continue
		}
		if word >= 0 {
			out = append(out, string(rs[word:i]))
			word = -1
		}
		if !unicode.IsSpace(r) {
			out = append(out, string(r))
		}
	}
	if word >= 0 {
		out = append(out, string(rs[word:]))
	}
	return out
}

// Vocabulary returns every token (Tokens) any prompt, reasoning chain,
// caption or instruction of the generator can contain, sorted. It is
// derived from the templates and the values their slots take, so it
// changes only when they do.
func Vocabulary() []string {
	var texts []string
	add := func(xs ...string) { texts = append(texts, xs...) }
	add(leads...)
	add(compositionTemplates...)
	add(relationTemplates...)
	for _, p := range relationPhrases {
		add(p)
	}
	add(knowledgeColorTemplates...)
	add(knowledgeShapeTemplates...)
	add(knowledgeNumberTemplates...)
	add(knowledgeColorChain, knowledgeShapeChain, knowledgeNumberChain)
	for _, t := range arithmeticTemplates {
		add(t.prompt, t.chain)
	}
	add(arithmeticChainEnd, spatialTemplate, spatialChain)
	add(directions...)
	add(negationTemplate, negationChain, comparisonTemplate, comparisonChain)
	add(comparatives...)
	add(textTemplates...)
	add(textCaption)
	add(addTemplates...)
	add(removeTemplates...)
	add(recolorTemplates...)
	add(moveTemplates...)
	add(retextTemplates...)
	add(addInstruction, removeInstruction, recolorInstr, moveInstruction, retextInstruction)
	add(objectCaption, emptyCaption, `"`)
	add(numberWords...)
	add(articleWords...)
	add(listSeparators...)
	add("or")
	for _, s := range AllShapes {
		add(string(s), s.Plural())
	}
	for _, c := range AllColors {
		add(string(c))
	}
	for _, s := range AllSizes {
		add(string(s))
	}
	add(RowNames[:]...)
	add(ColNames[:]...)
	for _, f := range Facts() {
		add(f.Subject, f.Value, f.Because)
	}
	for _, r := range TextAlphabet {
		add(string(r))
	}
	seen := make(map[string]bool)
	var vocab []string
	for _, t := range texts {
		for _, tok := range Tokens(stripSlots(t)) {
			if !seen[tok] {
				seen[tok] = true
				vocab = append(vocab, tok)
			}
		}
	}
	slices.Sort(vocab)
	return vocab
}

// stripSlots removes the {slot} placeholders of a template.
func stripSlots(t string) string {
	out := make([]rune, 0, len(t))
	depth := 0
	for _, r := range t {
		switch {
		case r == '{':
			depth++
			out = append(out, ' ')
		case r == '}' && depth > 0:
			depth--
		case depth == 0:
			out = append(out, r)
		}
	}
	return string(out)
}
