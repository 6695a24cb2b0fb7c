package extproc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/catalog"
)

// Fixtures for the translation benchmarks: a client request of about 2 KB in each protocol, and a
// 500-chunk stream in each provider's grammar.
var (
	benchClientRequests = map[protocol]struct {
		ep   endpoint
		body string
	}{
		protoOpenAI: {endpoint{kind: routeChat, proto: protoOpenAI}, `{"model":"gpt","stream":true,"temperature":0.5,"max_tokens":500,"messages":[{"role":"system","content":"` +
			strings.Repeat("You are helpful. ", 50) + `"},{"role":"user","content":"` + strings.Repeat("Tell me about Envoy. ", 50) + `"}]}`},
		protoAnthropic: {endpoint{kind: routeMessages, proto: protoAnthropic}, `{"model":"gpt","stream":true,"temperature":0.5,"max_tokens":500,"system":"` +
			strings.Repeat("You are helpful. ", 50) + `","messages":[{"role":"user","content":"` + strings.Repeat("Tell me about Envoy. ", 50) + `"}]}`},
		protoGemini: {endpoint{kind: routeGenerate, proto: protoGemini, modelID: "gpt", stream: true}, `{"systemInstruction":{"parts":[{"text":"` +
			strings.Repeat("You are helpful. ", 50) + `"}]},"generationConfig":{"temperature":0.5,"maxOutputTokens":500},"contents":[{"role":"user","parts":[{"text":"` +
			strings.Repeat("Tell me about Envoy. ", 50) + `"}]}]}`},
	}
	benchProviderStreams = map[protocol][]byte{
		protoOpenAI:    providerStream(protoOpenAI, 500),
		protoAnthropic: providerStream(protoAnthropic, 500),
		protoGemini:    providerStream(protoGemini, 500),
	}
)

// providerStream builds an n-chunk text stream in a provider's grammar, as one chunk per event.
func providerStream(p protocol, n int) []byte {
	var b strings.Builder
	switch p {
	case protoOpenAI:
		for i := range n {
			fmt.Fprintf(&b, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" w%d\"},\"finish_reason\":null}],\"usage\":null}\n\n", i)
		}
		b.WriteString("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n")
		b.WriteString("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":420,\"completion_tokens\":500,\"total_tokens\":920}}\n\ndata: [DONE]\n\n")
	case protoAnthropic:
		b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":420,\"output_tokens\":1}}}\n\n")
		b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
		for i := range n {
			fmt.Fprintf(&b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" w%d\"}}\n\n", i)
		}
		b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
		b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":500}}\n\n")
		b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	case protoGemini:
		for i := range n {
			finish := ""
			if i == n-1 {
				finish = `,"finishReason":"STOP"`
			}
			fmt.Fprintf(&b, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\" w%d\"}]},\"index\":0%s}],\"usageMetadata\":{\"promptTokenCount\":420,\"candidatesTokenCount\":%d,\"totalTokenCount\":%d},\"modelVersion\":\"x\"}\r\n\r\n", i, finish, i+1, 421+i)
		}
	}
	return []byte(b.String())
}

func benchBackend(p protocol) (*catalog.Backend, *catalog.Model) {
	kind := map[protocol]string{protoOpenAI: "openai", protoAnthropic: "anthropic", protoGemini: "gemini"}[p]
	yaml := fmt.Sprintf(`providers: [{name: p, kind: %s, base_url: "https://h"}]
models: [{id: gpt, endpoints: [chat_completions, messages, gemini], max_output_tokens: 1000, backends: [{provider: p, upstream_model: up}]}]`, kind)
	cat, err := catalog.Parse("bench", []byte(yaml), func(string) string { return "k" })
	if err != nil {
		panic(err)
	}
	m, _ := cat.Lookup("gpt")
	return &m.Backends[0], m
}

var protocols = []protocol{protoOpenAI, protoAnthropic, protoGemini}

// BenchmarkTranslateRequest: parse and validate a 2 KB client request and build the provider's,
// for every client × provider pair.
func BenchmarkTranslateRequest(b *testing.B) {
	for _, client := range protocols {
		for _, provider := range protocols {
			b.Run(string(client)+"_to_"+string(provider), func(b *testing.B) {
				in := benchClientRequests[client]
				backend, model := benchBackend(provider)
				b.ReportAllocs()
				b.SetBytes(int64(len(in.body)))
				for b.Loop() {
					req, perr := parseClient(in.ep, []byte(in.body), nil)
					if perr != nil {
						b.Fatal(perr)
					}
					if _, _, err := upstreamRequest(req, backend, model); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkTranslateStream: a 500-chunk provider stream turned into the client's, fed one event
// per Envoy chunk, for every pair; reported per stream and per chunk.
func BenchmarkTranslateStream(b *testing.B) {
	for _, client := range protocols {
		for _, provider := range protocols {
			b.Run(string(provider)+"_stream_to_"+string(client), func(b *testing.B) {
				in := benchClientRequests[client]
				req, perr := parseClient(in.ep, []byte(in.body), nil)
				if perr != nil {
					b.Fatal(perr)
				}
				stream := benchProviderStreams[provider]
				sep := "\n\n"
				if provider == protoGemini {
					sep = "\r\n\r\n"
				}
				events := strings.SplitAfter(string(stream), sep)
				b.ReportAllocs()
				b.SetBytes(int64(len(stream)))
				for b.Loop() {
					proc := newStreamProcessor(req, nativeProvider(provider), "gpt")
					for _, ev := range events {
						if _, err := proc.Feed([]byte(ev), false); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := proc.Feed(nil, true); err != nil {
						b.Fatal(err)
					}
					if _, _, final := proc.Usage(); !final {
						b.Fatal("no usage")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/chunk")
			})
		}
	}
}
