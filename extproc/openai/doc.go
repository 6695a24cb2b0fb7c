// Package openai holds OpenAI's chat-completions wire format (POST /v1/chat/completions, GET
// /v1/models) on both sides of the gateway, and the gateway's pivot.
//
// The pivot: OpenAI's chat-completion shapes (ChatRequest, ChatCompletion, ChatCompletionChunk,
// Usage) are the form every request and answer takes between two different protocols. The
// anthropic and gemini packages convert their own shapes to and from these; a request and answer
// that stay in one protocol skip the pivot.
//
// Client side: an OpenAI SDK calls the gateway. ParseRequest validates the body into a
// ChatRequest, which is already the pivot. EncodeResponse and StreamEncoder render a pivot answer
// from a provider of another kind; ErrorBody and StreamError render gateway errors; ModelList and
// ModelObject render the model listing.
//
// Provider side: an OpenAI-kind provider (OpenAI itself, or a compatible host such as vLLM or
// Mistral) gets BuildRequest's body at Path. DecodeResponse and StreamDecoder turn its answer into
// the pivot together with billing usage; ProviderError turns its error responses into gateway
// errors. Same-protocol answers pass through RewriteResponse and StreamRewriter, which put the
// canonical model id in "model" and read the usage.
//
// Reasoning controls travel as Reasoning (reasoning.go): reasoning_effort in and out here, and
// the other protocols' thinking budgets through one table of efforts and budgets. Every stream
// decoder and rewriter here ends through sse.Decoder.End, the gateway's one end-of-stream rule.
//
// Files, the same in the openai, anthropic and gemini packages:
//
//	client.go             the protocol as a client speaks it: ParseRequest, limits
//	client_response.go    answers to a client: EncodeResponse, ErrorBody, StreamError, ModelList
//	stream_encode.go      pivot chunks as a client's stream: StreamEncoder
//	provider.go           the pivot as a provider's request: BuildRequest, Path
//	provider_response.go  a provider's answer into the pivot: DecodeResponse, ProviderError, usage
//	stream_decode.go      a provider's stream into pivot chunks: StreamDecoder
//	passthrough.go        same protocol both sides: PassthroughBody, RewriteResponse, StreamRewriter
//	types.go              wire types
//
// plus params.go (the parameters that need a model's allowed_params) and reasoning.go.
//
// Reference: https://platform.openai.com/docs/api-reference/chat (request, response, stream
// chunks), https://platform.openai.com/docs/api-reference/models (model listing).
package openai
