// Package gemini holds Google's Gemini API wire format (generateContent and
// streamGenerateContent?alt=sse, https://ai.google.dev/api/generate-content) on both sides of the
// gateway.
//
// Client side: a Gemini SDK calls /v1beta/models/{model}:generateContent (or /v1/…). ParsePath
// reads the model and streaming flag from the path, ParseRequest validates the body, and the
// request either goes to a Gemini provider as it came (PassthroughBody, Path) or into the pivot
// (Request.ToPivot) for a provider of another kind. The answer is rendered back with
// EncodeResponse or StreamEncoder; errors with ErrorBody and StreamError; the model listing with
// ModelList and ModelObject.
//
// Provider side: a request that arrived in another protocol, already in the pivot, is sent to
// Gemini with BuildRequest; the answer comes back through DecodeResponse or StreamDecoder, and
// provider errors through ProviderError. Same-protocol answers are passed through
// RewriteResponse and StreamRewriter, which put the canonical model id in modelVersion and read
// the usage.
//
// thinkingConfig travels as the pivot's reasoning control (openai.Reasoning): thinkingBudget or
// thinkingLevel and includeThoughts in, a thinkingBudget out (thinkingConfig in provider.go).
// Thought parts become the pivot's reasoning, and are rendered for a Gemini client only when it
// asked for them (ShowThoughts). thoughtsTokenCount is billed as reasoning, apart from
// candidatesTokenCount. Stream decoders and rewriters end through sse.Decoder.End.
//
// Requests may spell fields in camelCase or in proto snake_case (the API accepts both); this
// package always emits camelCase. Nothing here is safe for concurrent use unless stated.
//
// Files, the same in the openai, anthropic and gemini packages:
//
//	client.go             the protocol as a client speaks it: ParsePath, ParseRequest, ToPivot, limits
//	client_response.go    answers to a client: EncodeResponse, ErrorBody, StreamError, ModelList
//	stream_encode.go      pivot chunks as a client's stream: StreamEncoder
//	provider.go           the pivot as a provider's request: BuildRequest, Path
//	provider_response.go  a provider's answer into the pivot: DecodeResponse, ProviderError, usage
//	stream_decode.go      a provider's stream into pivot chunks: StreamDecoder
//	passthrough.go        same protocol both sides: PassthroughBody, RewriteResponse, StreamRewriter
//	types.go              wire types
//
// plus params.go (the parameters that need a model's allowed_params), wire.go (camelCase and
// snake_case field decoding) and schema.go (OpenAPI schema to JSON Schema).
package gemini
