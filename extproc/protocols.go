package extproc

import (
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/params"
)

// protocol is a client protocol, the key of clientCodecs; a provider codec's native protocol is
// the one whose requests it takes natively.
type protocol string

const (
	protoOpenAI    protocol = "openai"
	protoAnthropic protocol = "anthropic"
	protoGemini    protocol = "gemini"
)

// clientRequest is a client's request, parsed and validated. Every request is also held in the
// pivot (OpenAI chat) form, which bounds the credit hold and feeds cross-protocol translation;
// native keeps the client's own form for a same-protocol provider.
type clientRequest struct {
	proto        protocol
	model        string // as requested: id, alias, maybe eu/-prefixed
	stream       bool
	includeUsage bool // OpenAI's stream_options.include_usage; other protocols always report usage
	pivot        *openai.ChatRequest
	native       any
	// governed are the parameters that need the model's allowed_params (package params).
	governed []params.Use
	// headers are the client's own protocol headers an attempt forwards to a provider of the
	// same protocol (Anthropic's version and betas, the betas normalised; governed checks them).
	headers map[string]string
	// count is set for a token-count request (counttokens.go), which is neither held nor charged.
	count *countRequest
}

// streamProcessor turns a provider's stream into the client's, one Envoy body chunk at a time. A
// returned error ends the client's stream (the caller appends the client's error event).
type streamProcessor interface {
	Feed(chunk []byte, endOfStream bool) ([]byte, error)
	// Usage is the provider-reported usage so far: seen once any arrived, final once the
	// provider's last usage event passed (Anthropic's message_delta, Gemini's frame with a
	// finish reason, OpenAI's usage chunk). Before that it is only a lower bound.
	Usage() (u billing.Usage, seen, final bool)
	FinishReason() string
	// ContentBytes counts the bytes of content (text, reasoning, tool arguments) passed to the
	// client, from which a stream cut before its final usage is estimated.
	ContentBytes() int64
}

// nativeStream is what every protocol package's StreamRewriter offers: a same-protocol stream
// relayed with the model renamed, its usage read on the way.
type nativeStream interface {
	Feed(chunk []byte, endOfStream bool) ([]byte, error)
	Usage() (openai.Usage, billing.Usage, bool)
	UsageFinal() bool
	FinishReason() string
	ContentBytes() int64
}

// passthrough adapts a nativeStream to streamProcessor, whose usage is in billing's terms.
type passthrough struct{ nativeStream }

func (p passthrough) Usage() (billing.Usage, bool, bool) {
	_, u, ok := p.nativeStream.Usage()
	return u, ok, ok && p.UsageFinal()
}

// chunkDecoder reads a provider's stream into pivot chunks.
type chunkDecoder interface {
	Feed(chunk []byte, endOfStream bool) ([]openai.ChatCompletionChunk, error)
	Usage() (openai.Usage, billing.Usage, bool)
	// UsageFinal reports whether the provider's last usage event passed.
	UsageFinal() bool
	FinishReason() string
}

// chunkEncoder writes pivot chunks as the client's stream.
type chunkEncoder interface {
	Encode(dst []byte, chunks []openai.ChatCompletionChunk) []byte
	Finish(dst []byte, u *openai.Usage) []byte
}

// bridge translates a stream between protocols through pivot chunks.
type bridge struct {
	dec     chunkDecoder
	enc     chunkEncoder
	content int64
}

func (b *bridge) Feed(chunk []byte, endOfStream bool) ([]byte, error) {
	chunks, err := b.dec.Feed(chunk, endOfStream)
	for _, c := range chunks {
		for _, ch := range c.Choices {
			d := &ch.Delta
			b.content += int64(len(d.ReasoningContent))
			if d.Content != nil {
				b.content += int64(len(*d.Content))
			}
			if d.Refusal != nil {
				b.content += int64(len(*d.Refusal))
			}
			for _, tc := range d.ToolCalls {
				b.content += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
			}
		}
	}
	out := b.enc.Encode(nil, chunks)
	if err != nil {
		return out, err
	}
	if endOfStream {
		var u *openai.Usage
		if ou, _, ok := b.dec.Usage(); ok {
			u = &ou
		}
		out = b.enc.Finish(out, u)
	}
	return out, nil
}

func (b *bridge) Usage() (billing.Usage, bool, bool) {
	_, u, ok := b.dec.Usage()
	return u, ok, ok && b.dec.UsageFinal()
}
func (b *bridge) FinishReason() string { return b.dec.FinishReason() }
func (b *bridge) ContentBytes() int64  { return b.content }
