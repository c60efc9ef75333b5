// Package datasets generates ShapeWorld, the synthetic world that stands in
// for web-scale data: scene specifications, a renderer, prompt templates for
// every reward scenario, train and held-out splits that hold back
// combinations, and the Arrow IPC files they are stored as.
//
// # Scenes
//
// A [Scene] is either up to nine objects on a 3×3 grid — a [Shape] (circle,
// square, triangle, diamond, cross) in a [Color] (red, orange, yellow,
// green, blue, purple) and a [Size] (small, large) per [Cell] — or a string
// of 1 to 4 characters (A–Z, 0–9) in the 7×13 bitmap font of
// golang.org/x/image/font/basicfont, drawn centred in near-black. [Render]
// draws a scene on a white square canvas, 32 px by default and any size up
// to 1024 px; it is deterministic, and every object box leaves at least one
// background pixel between neighbouring cells.
//
// # Rows
//
// [Generate] makes rows, each a function of (seed, split, index) alone, so
// any slice of a dataset can be regenerated. Rows cycle through the five
// scenarios:
//
//   - composition: a GenEval-like request (single object, two objects,
//     counting, attributes, position);
//   - reasoning: a request that needs world knowledge from the fact table
//     ([Facts], 71 facts), arithmetic, spatial reasoning, or logic
//     (negation, comparison), with a written reasoning chain in Think;
//   - text: a sign or label that reads a 1–4 character string;
//   - editing: a reference scene and an add, remove, recolour, move or
//     change-text request;
//   - reflection: a composition request and a deliberately flawed image of
//     it (an object missing, one extra, a wrong colour, a wrong position);
//     the answer is the edit that corrects it.
//
// Every row carries the user's Prompt, the Think chain (reasoning rows
// only), the Answer the MLLM should write after </think> — the canonical
// [Caption] of the target scene, or for editing and reflection the
// canonical edit instruction — the target [Spec] (scene and
// requirements), the target PNG and, for editing and reflection, the
// reference PNG.
//
// # Splits
//
// The eval split holds back combinations the train split never shows, in
// any image, requirement or prompt:
//
//   - six colour×shape pairs ([HeldOutPairs]);
//   - every fifth fact of the fact table ([FactSplit]);
//   - about one string in five, chosen by hash ([StringSplit]).
//
// Every eval row shows at least one held-back combination in its target
// (knowledge rows: a held-back fact), so eval scores measure
// generalisation, not memory. The eval-id split ([EvalID]) is its
// in-distribution counterpart: new scenes of the combinations the train
// split shows, drawn from another random stream than the train rows.
//
// # Requirements and captions
//
// [CheckRequirements] scores a list of objects — a scene's, or what a
// detector read from an image — against a spec's requirements with
// GenEval's partial credit; the reward package's rule models build on it.
// [ParseCaption] reads a canonical caption back into objects, the inverse
// of [Caption], and [ScoreCaption] scores a caption on its own as if it
// were a detector's reading: the score of the MLLM's instruction for a
// composition or reasoning row ([AnswersWithCaption]) before the DiT draws
// anything.
//
// # Files
//
// Datasets are Arrow IPC files ([WriteFile], [ReadFile]) with the columns
// id, split, scenario, task, prompt, think, answer (utf8), spec and
// reference_scene (utf8 JSON, see [Spec]), target_png and reference_png
// (binary; empty when absent). The schema metadata holds
// thinkgen.schema = "shapeworld", thinkgen.schema_version (now 1) and
// thinkgen.image_size. Readers reject any other schema or version.
//
// # Tokens
//
// [Tokens] is the word-level tokenisation of ShapeWorld text and
// [Vocabulary] every token the templates can produce.
package datasets
