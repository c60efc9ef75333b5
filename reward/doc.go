// Package reward scores rollouts: deterministic rule models for the five
// ShapeWorld scenarios (composition, reasoning, text rendering, editing,
// reflection), a registry that routes each item by its scenario, and the
// client and server of remote reward services.
//
// # Rule models
//
// All rule models are pure Go and deterministic. They read images back
// with two instruments:
//
//   - [Detect]: every pixel is read as a palette colour or the text ink
//     blended with the background, and goes to the colour whose blend fits
//     it best, or to the background when that colour covers less than
//     half of it ([MinInk] for the ink, whose strokes are one pixel
//     wide); non-background pixels form 4-connected components; each
//     component gets its majority colour, the shape whose square template
//     (datasets.ShapeMask, slid along a cut-off side) overlaps it best by
//     IoU, the nearer size class and the grid cell of its centre; a
//     component covering less than [MinFit] of its template is a fragment,
//     not an object;
//   - [ReadText]: template-matching OCR over the basicfont glyphs the
//     renderer draws with, searching the string length and a one-pixel
//     placement jitter for the reading with the fewest mismatched pixels.
//
// Per scenario ([Rules]):
//
//   - composition and reasoning ([ScoreComposition]): GenEval-style partial
//     credit of the detected objects against the spec's requirements
//     (datasets.CheckRequirements); for reasoning the spec holds the
//     resolved target. Strict: every requirement fully met;
//   - text ([ScoreText]): flow_grpo's OCR reward ([OCRReward]) as the
//     score, CVTG word accuracy ([WordAccuracy]) as the strict measure;
//   - editing ([ScoreEditing]): target match × preservation of the region
//     the edit must leave untouched, against the reference image;
//   - reflection ([ScoreReflection]): the corrected image against the
//     original request, as composition; the normalised edit distance
//     ([NED]) between the written and the reference correction is logged
//     in Aux["ned"].
//
// # Using a Scorer
//
//  1. Build a [Registry]: [FromConfig] with the run's config.Reward (the
//     built-in rule models, a [Client] for each scenario reward.remote
//     names, reward.weights), or [Builtin] / [NewRegistry] directly.
//  2. Make one [Item] per image: its scenario, the row's spec JSON, the
//     image and, for editing, the reference image.
//  3. Call Score. The results come back in the items' order. An item that
//     cannot be scored (a bad image or spec) has Err set and a zero score;
//     an error from Score fails the batch (unknown scenario, cancelled
//     context, unreachable service).
//
// [RobustnessSet] renders a labelled set of images with the artefacts a
// generator makes (blur, noise, brightness and colour drift, smears,
// blobby and partly cut shapes, cut glyphs; [Artefacts] states each label
// rule) and [ScoreRobustness] counts a scorer's verdicts on it against the
// labels: docs/results.md "Reward robustness".
//
// [Summarize] reduces results to per-scenario means of the partial and
// strict scores and [WriteTable] prints them: the figures of eval's
// tables.
//
// [Shape] turns an image's result into the reward a rollout trains on:
// the score, or in the MLLM's phase with reward.instruction λ > 0 a blend
// with [InstructionScore], the score of the instruction the MLLM wrote read
// as a caption against the row's requirements.
//
// # Remote services
//
// [NewServer] serves any Scorer over HTTP and [Client] calls it; the
// protocol (version [ProtocolVersion]) is documented on [ScoreRequest].
// `thinkgen reward-serve` serves the built-in rule models, so GPU-backed
// rule models can replace them behind the same protocol.
//
// The service trusts nothing it is sent. Every request carries a bearer
// token (the controller API's scheme; [LoadToken] reads it from a file or
// the environment, for the service and its clients alike), and a server
// without one listens only on loopback. It serves HTTPS when given a
// certificate. [HandlerOptions] bound a request's body, its items, each
// image's pixels and the pixels decoded per request; an image's size is
// read from its PNG header before a pixel is decoded, so a small file
// that would decode to gigabytes costs nothing. Every phase of a
// connection has a timeout.
package reward
