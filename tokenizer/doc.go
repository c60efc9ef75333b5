// Package tokenizer turns text into token ids and back for thinkgen's
// models.
//
// Two tokenizers implement [Tokenizer]:
//
//   - [Words], a word-level tokenizer for ShapeWorld built from a word list
//     plus the special tokens and a printable-ASCII character fallback, so
//     that any ASCII string (such as a sign's text "K7Q") encodes and
//     decodes losslessly;
//   - [BPE], HuggingFace byte-level BPE loaded from a tokenizer.json as
//     Qwen2 and Qwen3 ship it, so full-scale checkpoints tokenize exactly as
//     transformers does.
//
// Both recognise the special tokens (<|im_start|>, <|im_end|>, <think>,
// </think>, <|vision_start|>, <|image_pad|>, <|vision_end|>, and
// <|endoftext|> for padding) as single tokens wherever they appear in the
// text, and both save to JSON, which [Load] reads back.
//
// # Chat prompts
//
// [Chat] renders a system and user turn and opens the assistant's turn as
// Qwen3's chat template does, with the reasoning block opened, skipped or
// left to the model ([ThinkMode]), and with image placeholders
// (<|vision_start|>, N × <|image_pad|>, <|vision_end|>) in the user turn.
// [Reply] renders the assistant's reply to such a prompt — the chain of
// thought, </think> and the answer, or the answer alone after a skipped
// block — as the warm-up teaches it; [SplitReply] reads what the MLLM
// wrote back into its chain of thought and instruction, for every caller.
//
// # Use
//
//  1. Build or load: NewWords(datasets.Vocabulary()), or LoadFile of a
//     tokenizer.json or of a checkpoint's saved tokenizer.
//  2. Render a prompt with Chat.Prompt and Encode it.
//  3. Decode generated ids; stop at Specials().EOS.
//  4. Save the tokenizer with the checkpoint (MarshalJSON or SaveFile).
package tokenizer
