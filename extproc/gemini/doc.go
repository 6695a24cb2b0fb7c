// Package gemini holds Google's Gemini API wire format (generateContent and
// streamGenerateContent?alt=sse, https://ai.google.dev/api/generate-content) on both sides of the
// gateway.
//
// Client side: a Gemini SDK calls /v1beta/models/{model}:generateContent (or /v1/…). ParsePath
// reads the model and streaming flag from the path, ParseRequest validates the body, and the
// request either goes to a Gemini provider as it came (UpstreamBody, Path) or into the pivot
// (Request.ToOpenAI) for a provider of another kind. The answer is rendered back with
// EncodeResponse or StreamEncoder; errors with ErrorBody and StreamError.
//
// Provider side: a request that arrived in another protocol, already in the pivot, is sent to
// Gemini with FromOpenAI; the answer comes back through ToOpenAI or StreamDecoder, and provider
// errors through ProviderError. Same-protocol answers are passed through RewriteResponse and
// StreamRewriter, which put the canonical model id in modelVersion and read the usage.
//
// thinkingConfig travels as the pivot's reasoning control (openai.Reasoning): thinkingBudget or
// thinkingLevel and includeThoughts in, a thinkingBudget out (thinkingConfig in provider.go).
// Thought parts become the pivot's reasoning, and are rendered for a Gemini client only when it
// asked for them (ShowThoughts). thoughtsTokenCount is billed as reasoning, apart from
// candidatesTokenCount. Stream decoders and rewriters end through sse.Decoder.End.
//
// Requests may spell fields in camelCase or in proto snake_case (the API accepts both); this
// package always emits camelCase. Nothing here is safe for concurrent use unless stated.
package gemini
