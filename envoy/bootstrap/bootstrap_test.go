package bootstrap_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
)

var update = flag.Bool("update", false, "rewrite testdata/bootstrap.golden.yaml")

// representative covers every shape Render produces: an IP extproc (STATIC); a model cluster
// whose levels are its backends (TLS providers on two hosts, weighted) and a fallback model's
// (plain HTTP, then another provider kind); an EU cluster; the management cluster (Direct:
// neither upstream filters nor outlier detection nor retries); and the ratelimit filter with a
// DNS-named RLS (STRICT_DNS).
func representative() bootstrap.Params {
	return bootstrap.Params{
		ExtProc:   bootstrap.Upstream{Host: "127.0.0.1", Port: 50051},
		RateLimit: &bootstrap.RateLimit{Service: bootstrap.Upstream{Host: "ratelimit", Port: 8081}},
		Clusters: []bootstrap.Cluster{
			{Name: contract.ModelCluster("gpt-5.4", false), Priorities: [][]bootstrap.Endpoint{
				{
					{Backend: contract.BackendName("openai", "gpt-5.4"), Host: "api.openai.com", Port: 443, TLS: true, Weight: 3},
					{Backend: contract.BackendName("azure", "gpt-5.4-prod"), Host: "example.openai.azure.com", Port: 443, TLS: true, Weight: 1},
				},
				{{Backend: contract.BackendName("local-mock", "gpt-5.4"), Host: "localhost", Port: 9000}},
				{{Backend: contract.BackendName("anthropic", "claude-sonnet-4-6"), Host: "api.anthropic.com", Port: 443, TLS: true}},
			}},
			{Name: contract.ModelCluster("gpt-5.4", true), Priorities: [][]bootstrap.Endpoint{
				{{Backend: contract.BackendName("openai-eu", "gpt-5.4"), Host: "eu.api.openai.com", Port: 8443, TLS: true}},
			}},
			{Name: contract.ManagementCluster, Direct: true, Priorities: [][]bootstrap.Endpoint{
				{{Backend: "management", Host: "127.0.0.1", Port: 8090}},
			}},
		},
	}
}

func TestRenderMarshalLoadRoundTrip(t *testing.T) {
	b, err := bootstrap.Render(representative())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	got, err := bootstrap.Load(y)
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, y)
	}
	if !proto.Equal(got, b) {
		t.Fatalf("Load(Marshal(b)) differs from b")
	}
	y2, err := bootstrap.Marshal(got)
	if err != nil {
		t.Fatalf("Marshal again: %v", err)
	}
	if !bytes.Equal(y, y2) {
		t.Errorf("Marshal is not stable across a round trip")
	}

	exts, err := bootstrap.TypedExtensions(got)
	if err != nil {
		t.Fatalf("TypedExtensions: %v", err)
	}
	var names []string
	for _, m := range exts {
		names = append(names, string(m.ProtoReflect().Descriptor().FullName()))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	want := []string{
		"envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
		"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimit",
		"envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute",
		"envoy.extensions.filters.http.router.v3.Router",
		"envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
		"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
	}
	if !slices.Equal(names, want) {
		t.Errorf("typed extensions = %v, want %v", names, want)
	}
	if err := bootstrap.Validate(got); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestGolden(t *testing.T) {
	b, err := bootstrap.Render(representative())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	path := filepath.Join("testdata", "bootstrap.golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, y, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(y, want) {
		t.Errorf("rendered bootstrap differs from %s (run go test ./envoy/bootstrap -update):\n%s", path, y)
	}
	// The golden file is what Envoy itself reads: it must load as is.
	got, err := bootstrap.Load(want)
	if err != nil {
		t.Fatalf("golden file does not load: %v", err)
	}
	if !proto.Equal(got, b) {
		t.Errorf("Load(golden) differs from Render")
	}
}

func TestRenderDefaultsAndShape(t *testing.T) {
	b, err := bootstrap.Render(representative())
	if err != nil {
		t.Fatal(err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	s := string(y)
	for _, want := range []string{
		"message_timeout: 10s",
		"timeout: 300s",
		"stream_idle_timeout: 310s", // the route timeout plus one message_timeout
		"per_connection_buffer_limit_bytes: 33554432",
		"max_receive_message_length: 68157440",
		"cluster_header: x-tollgate-cluster",
		"auto_host_rewrite: true",
		"allow_mode_override: true",
		"sni: api.openai.com",
		"hostname: eu.api.openai.com:8443",
		"port_value: 9901",
		"domain: tollgate",
		"timeout: 0.500s",
		"failure_mode_deny: true",
		"use_remote_address: true",
		"internal_address_config: {}",
		"enable_x_ratelimit_headers: DRAFT_VERSION_03",
		"transport_api_version: V3",
		"cluster_name: tollgate_ratelimit",
		"format: '%DYNAMIC_METADATA(tollgate:total_tokens)%'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("bootstrap lacks %q", want)
		}
	}
	if got := bootstrap.GRPCMaxMessageBytes(bootstrap.DefaultMaxRequestBytes); got != 2*32<<20+1<<20 {
		t.Errorf("GRPCMaxMessageBytes = %d", got)
	}
}

func TestRenderRejects(t *testing.T) {
	good := representative()
	tests := []struct {
		name string
		edit func(*bootstrap.Params)
		want string
	}{
		{"no extproc", func(p *bootstrap.Params) { p.ExtProc = bootstrap.Upstream{} }, "extproc: host and port, or a unix socket path, are required"},
		{"duplicate cluster", func(p *bootstrap.Params) { p.Clusters = append(p.Clusters, p.Clusters[0]) }, `cluster "model_gpt-5.4": name used twice`},
		{"back-off max below base", func(p *bootstrap.Params) {
			p.Retry = &bootstrap.Retry{BackOffBase: 2e9, BackOffMax: 1e9}
		}, "back-off max"},
		{"bad retriable status", func(p *bootstrap.Params) {
			p.Retry = &bootstrap.Retry{RetriableStatusCodes: []uint32{42}}
		}, "retriable status code 42"},
		{"reserved name", func(p *bootstrap.Params) { p.Clusters[0].Name = bootstrap.ExtProcClusterName }, "name used twice"},
		{"empty cluster", func(p *bootstrap.Params) { p.Clusters[1].Priorities = nil }, `cluster "model_gpt-5.4_eu": no endpoints`},
		{"endpoint without port", func(p *bootstrap.Params) { p.Clusters[1].Priorities[0][0].Port = 0 }, "host and port"},
		{"endpoint without backend", func(p *bootstrap.Params) { p.Clusters[1].Priorities[0][0].Backend = "" }, "backend is required"},
		{"tiny timeout", func(p *bootstrap.Params) { p.MessageTimeout = time.Microsecond }, "message timeout"},
		{"ratelimit without port", func(p *bootstrap.Params) {
			p.RateLimit = &bootstrap.RateLimit{Service: bootstrap.Upstream{Host: "rls"}}
		}, "ratelimit: host and port"},
		{"ratelimit cluster name", func(p *bootstrap.Params) { p.Clusters[0].Name = bootstrap.RateLimitClusterName }, "name used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := representative()
			p.Clusters = cloneClusters(good.Clusters)
			tt.edit(&p)
			_, err := bootstrap.Render(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "admin:\n  adress: {}\n", "unknown field"},
		{"unknown typed config", `static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: 1}}
    filter_chains:
    - filters:
      - name: x
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope}
`, "nope"},
		{"validation", `static_resources:
  clusters:
  - name: ""
`, "Name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bootstrap.Load([]byte(tt.yaml))
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func cloneClusters(cs []bootstrap.Cluster) []bootstrap.Cluster {
	out := make([]bootstrap.Cluster, len(cs))
	for i, c := range cs {
		out[i] = bootstrap.Cluster{Name: c.Name, Direct: c.Direct}
		for _, level := range c.Priorities {
			out[i].Priorities = append(out[i].Priorities, slices.Clone(level))
		}
	}
	return out
}
