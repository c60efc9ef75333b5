// Package serve serves a think-then-generate model over an
// OpenAI-compatible HTTP API (thinkgen serve):
//
//   - POST /v1/images/generations (OpenAI's Images API): the MLLM thinks,
//     then the DiT draws (rollout.ThinkDraw, the one pipeline); each image
//     comes back as data[i].b64_json (PNG) with the instruction the MLLM
//     wrote as revised_prompt and, as thinkgen extensions, its chain of
//     thought (thinking), the mode (think or direct) and the seed;
//   - POST /v1/chat/completions: the MLLM alone, non-streaming, with real
//     token counts in usage; in think mode the chain of thought comes back
//     in message.reasoning (and reasoning_content) and the answer in
//     message.content;
//   - GET /v1/models and /v1/models/{id}: the one model served.
//
// Every request must carry the bearer token when one is set (401
// otherwise); without one the server listens only on loopback. Bad input
// is refused before it is queued, with an error in OpenAI's shape
// ({"error": {"message", "type", "param", "code"}}) naming the field: 400,
// or 413 for a body past Limits.MaxBodyBytes. Accepted requests wait in a
// bounded queue served by a fixed number of model workers, each with its
// own Engine on its own OS thread, which run the queued requests of one
// kind in batches; a full queue, or a request that waited past
// Options.RequestTimeout, is a 503 with Retry-After. HTTP serving
// (timeouts, TLS, graceful shutdown) is package internal/httpserve's.
package serve
