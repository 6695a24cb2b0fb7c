// Package anthropic holds Anthropic's Messages API wire format (POST /v1/messages, GET
// /v1/models) and its translation in both directions.
//
// Client side: an Anthropic SDK calls the gateway. ParseRequest validates the body; for an
// Anthropic-kind provider PassthroughBody forwards it with the provider's model name, and
// RewriteResponse / StreamRewriter pass the answer back with the canonical model and read its
// usage. For any other provider, Request.ToPivot converts it into the gateway's pivot (the
// openai package's chat-completion shapes), and EncodeResponse / StreamEncoder render the
// pivot answer in Anthropic's shape. ErrorBody and StreamError render gateway errors; ModelList
// and ModelObject render the model listing.
//
// Provider side: a request that arrived in another protocol, already in the pivot, goes to an
// Anthropic-kind provider. BuildRequest builds the Messages body for Path; DecodeResponse and
// StreamDecoder turn the answer back into the pivot together with billing usage; ProviderError
// turns Anthropic's error responses into gateway errors.
//
// Anthropic has no response_format. A json_schema request without tools is sent as one forced
// tool, StructuredOutputTool, whose input is the answer; the response side recognises that tool
// by name, without request state, and turns its input back into text content (see provider.go).
//
// Extended thinking travels as the pivot's reasoning control (openai.Reasoning): thinking's
// budget_tokens in, a budget fitted to the Messages API's rules out (setThinking). Thinking
// blocks come back as the pivot's reasoning; Anthropic's signatures survive only the
// same-protocol path, and a native request never forwards an unsigned thinking block.
//
// Every stream decoder and rewriter here ends through sse.Decoder.End, the gateway's one
// end-of-stream rule.
//
// Files, the same in the openai, anthropic and gemini packages:
//
//	client.go             the protocol as a client speaks it: ParseRequest, ToPivot, limits
//	client_response.go    answers to a client: EncodeResponse, ErrorBody, StreamError, ModelList
//	stream_encode.go      pivot chunks as a client's stream: StreamEncoder
//	provider.go           the pivot as a provider's request: BuildRequest, Path
//	provider_response.go  a provider's answer into the pivot: DecodeResponse, ProviderError, usage
//	stream_decode.go      a provider's stream into pivot chunks: StreamDecoder
//	passthrough.go        same protocol both sides: PassthroughBody, RewriteResponse, StreamRewriter
//	types.go              wire types
//
// plus params.go (the parameters that need a model's allowed_params, and anthropic-beta).
//
// Reference: https://docs.claude.com/en/api/messages (request and response),
// https://docs.claude.com/en/docs/build-with-claude/streaming (event grammar),
// https://docs.claude.com/en/api/errors (error types), https://docs.claude.com/en/api/models-list
// (model listing).
package anthropic
