package tokenizer_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/thinkgen/thinkgen/tokenizer"
)

func ExampleWords() {
	tok, err := tokenizer.NewWords([]string{"a", "sign", "that", "reads", "red", "circle", `"`})
	if err != nil {
		log.Fatal(err)
	}
	ids, err := tok.Encode(`a red sign that reads "K7Q"`)
	if err != nil {
		log.Fatal(err)
	}
	var pieces []string
	for _, id := range ids {
		s, _ := tok.Token(id)
		pieces = append(pieces, fmt.Sprintf("%q", s))
	}
	fmt.Println(strings.Join(pieces, " "))
	fmt.Println(tok.Decode(ids))
	// Output:
	// "a" " red" " sign" " that" " reads" " \"" "K" "7" "Q" "\""
	// a red sign that reads "K7Q"
}

func ExampleChat_Prompt() {
	prompt, err := tokenizer.Chat{
		System: "You draw pictures.",
		User:   "make the circle green",
		Images: []int{2},
		Think:  tokenizer.ThinkOpen,
	}.Prompt()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(prompt)
	// Output:
	// <|im_start|>system
	// You draw pictures.<|im_end|>
	// <|im_start|>user
	// <|vision_start|><|image_pad|><|image_pad|><|vision_end|>make the circle green<|im_end|>
	// <|im_start|>assistant
	// <think>
}
