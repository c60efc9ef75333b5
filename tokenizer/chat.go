package tokenizer

import (
	"fmt"
	"strings"
)

// ThinkMode says how a generation prompt opens the assistant's turn.
type ThinkMode int

const (
	// ThinkOpen opens the reasoning block: the prompt ends in
	// "<|im_start|>assistant\n<think>\n", as the templates of Qwen3's
	// thinking-only models (Qwen3-*-Thinking-2507) render it, so the model
	// must reason before it answers. ThinkGen's rollouts use this.
	ThinkOpen ThinkMode = iota
	// ThinkSkip closes an empty reasoning block: the prompt ends in
	// "<|im_start|>assistant\n<think>\n\n</think>\n\n", as Qwen3's hybrid
	// template renders enable_thinking=False.
	ThinkSkip
	// ThinkFree leaves the choice to the model: the prompt ends in
	// "<|im_start|>assistant\n", as Qwen3's hybrid template renders
	// enable_thinking=True (its default).
	ThinkFree
)

// String returns "open", "skip" or "free".
func (m ThinkMode) String() string {
	switch m {
	case ThinkOpen:
		return "open"
	case ThinkSkip:
		return "skip"
	case ThinkFree:
		return "free"
	}
	return fmt.Sprintf("ThinkMode(%d)", int(m))
}

// Message is one earlier turn of a conversation: Role "user" or
// "assistant" and its text.
type Message struct {
	Role, Content string
}

// Chat is a conversation to be rendered as a generation prompt: an
// optional system message, earlier turns, and the user's last message.
type Chat struct {
	// System is the system message; empty means no system turn.
	System string
	// History holds the turns before User, in order; empty for a
	// single-turn prompt.
	History []Message
	// User is the user's message text.
	User string
	// Images holds, per input image, its number of image tokens. Each image
	// becomes <|vision_start|>, that many <|image_pad|>, <|vision_end|>,
	// placed before the user's text in order, as Qwen-VL's template renders
	// a message whose content is [image…, text] and its processor expands
	// the pad token. Nil or empty means a text-only prompt.
	Images []int
	// Think says how the assistant's turn is opened; the zero value is
	// ThinkOpen.
	Think ThinkMode
}

// Prompt renders c as Qwen3's chat template renders the messages
// [system, history…, user] with add_generation_prompt=True:
//
//	<|im_start|>system\n{System}<|im_end|>\n
//	<|im_start|>{Role}\n{Content}<|im_end|>\n   (each History turn)
//	<|im_start|>user\n{images}{User}<|im_end|>\n
//	<|im_start|>assistant\n{opening}
//
// where opening depends on c.Think. History turns are written as they
// are, as the exported chat template (package export) writes every
// message. It fails for a History role other than user or assistant,
// an image token count below 1 or an unknown ThinkMode.
func (c Chat) Prompt() (string, error) {
	var b strings.Builder
	if c.System != "" {
		b.WriteString(ImStart + "system\n" + c.System + ImEnd + "\n")
	}
	for i, m := range c.History {
		if m.Role != "user" && m.Role != "assistant" {
			return "", fmt.Errorf("tokenizer: chat: history turn %d has role %q, want user or assistant", i, m.Role)
		}
		b.WriteString(ImStart + m.Role + "\n" + m.Content + ImEnd + "\n")
	}
	b.WriteString(ImStart + "user\n")
	for i, n := range c.Images {
		if n < 1 {
			return "", fmt.Errorf("tokenizer: chat: image %d has %d image tokens, want at least 1", i, n)
		}
		b.WriteString(ImagePlaceholder(n))
	}
	b.WriteString(c.User + ImEnd + "\n" + ImStart + "assistant\n")
	switch c.Think {
	case ThinkOpen:
		b.WriteString(Think + "\n")
	case ThinkSkip:
		b.WriteString(Think + "\n\n" + EndThink + "\n\n")
	case ThinkFree:
	default:
		return "", fmt.Errorf("tokenizer: chat: unknown think mode %d", int(c.Think))
	}
	return b.String(), nil
}

// ImagePlaceholder returns the text that stands for one image of n image
// tokens: <|vision_start|>, n × <|image_pad|>, <|vision_end|>. A count
// below 1 gives an empty pad run.
func ImagePlaceholder(n int) string {
	return VisionStart + strings.Repeat(ImagePad, max(n, 0)) + VisionEnd
}

// Reply renders the assistant's reply to a prompt opened with mode:
// after ThinkOpen the chain of thought, </think>, a blank line and the
// answer; after ThinkSkip (whose prompt already closed an empty block) the
// answer alone. Both end with <|im_end|>. It is what the warm-up teaches
// and what the pipeline reads back when the MLLM writes a row right.
func Reply(mode ThinkMode, think, answer string) string {
	if mode == ThinkOpen {
		return think + "\n" + EndThink + "\n\n" + answer + ImEnd
	}
	return answer + ImEnd
}

// SplitReply reads back what the MLLM wrote after a prompt: the chain of
// thought is the text before the first </think> (without a leading
// <think>), the instruction the text after it; a reply without </think>
// is all instruction. <|im_end|> is dropped and both parts are trimmed of
// surrounding space. It is the one parser of replies: rollouts, eval and
// generate all read the MLLM's text through it.
func SplitReply(written string) (thought, instruction string) {
	written = strings.ReplaceAll(written, ImEnd, "")
	if k := strings.Index(written, EndThink); k >= 0 {
		thought, instruction = written[:k], written[k+len(EndThink):]
	} else {
		instruction = written
	}
	thought = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(thought), Think))
	return thought, strings.TrimSpace(instruction)
}
