package extproc

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// TestBridge runs a stream through the pivot (OpenAI decoder, OpenAI encoder), the path every
// cross-protocol stream takes, cut at every byte.
func TestBridge(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		want := ""
		for i := 0; i <= len(upstreamStream); i++ {
			b := &bridge{dec: openai.NewStreamDecoder("gpt-5.4"), enc: openai.NewStreamEncoder("gpt-5.4", includeUsage)}
			var out []byte
			parts := []string{upstreamStream[:i], upstreamStream[i:], ""}
			for j, part := range parts {
				o, err := b.Feed([]byte(part), j == len(parts)-1) // Envoy ends with an empty chunk
				if err != nil {
					t.Fatalf("split %d: %v", i, err)
				}
				out = append(out, o...)
			}
			if want == "" {
				want = string(out)
			}
			if string(out) != want {
				t.Fatalf("split %d differs:\n%s\nwant\n%s", i, out, want)
			}
			u, seen, final := b.Usage()
			if !seen || !final || promptTokens(u) != 7 || completionTokens(u) != 2 || b.FinishReason() != "stop" || b.ContentBytes() != int64(len("Hé"+"llo")) {
				t.Fatalf("usage %+v seen %v final %v finish %q content bytes %d", u, seen, final, b.FinishReason(), b.ContentBytes())
			}
		}
		if !strings.HasSuffix(want, "data: [DONE]\n\n") || strings.Contains(want, `"usage"`) != includeUsage {
			t.Errorf("include_usage=%v: %s", includeUsage, want)
		}
	}
}

func TestBridgeCutStream(t *testing.T) {
	b := &bridge{dec: openai.NewStreamDecoder("m"), enc: openai.NewStreamEncoder("m", false)}
	_, err := b.Feed([]byte("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"), true)
	e, ok := err.(*apierror.Error)
	if !ok || e.Code != apierror.CodeProviderError {
		t.Fatalf("a stream without [DONE] must fail with provider_error, got %v", err)
	}
}
