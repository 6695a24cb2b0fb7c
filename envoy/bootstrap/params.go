// Package bootstrap renders Tollgate's Envoy bootstrap (docs/design.md sections 1, 2 and 5) as
// go-control-plane protos, marshals it to the YAML that `envoy -c` reads, and loads such YAML
// back with every typed extension resolved and validated, so a typo fails a test rather than a
// deployment. The development stand-in (envoy/standin) reads the same bootstrap.
package bootstrap

import (
	"errors"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Names and defaults of the bootstrap's own. The names extproc and the ratelimit service must
// agree on (headers, metadata, cluster names, attributes, descriptors) are in envoy/contract.
const (
	// ExtProcClusterName is the cluster through which Envoy reaches the extproc gRPC server.
	ExtProcClusterName = "tollgate_extproc"
	// TransportSocketMatchKey is the key under filter_metadata["envoy.transport_socket_match"]
	// that selects an endpoint's TLS transport socket (its value is the SNI host).
	TransportSocketMatchKey = "tollgate_sni"

	DefaultListenAddress   = "0.0.0.0"
	DefaultListenPort      = 8080
	DefaultMessageTimeout  = 10 * time.Second
	DefaultMaxRequestBytes = 32 << 20
	DefaultUpstreamTimeout = 300 * time.Second
	// DefaultConnectTimeout bounds TCP (and TLS) connection set-up to a model backend.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultExtProcConnectTimeout bounds connection set-up to the extproc sidecar.
	DefaultExtProcConnectTimeout = 2 * time.Second
	// DefaultUpstreamCAFile is where Debian-based images, Envoy's official one included, keep
	// the system CA bundle. Envoy verifies nothing unless told which CAs to trust.
	DefaultUpstreamCAFile = "/etc/ssl/certs/ca-certificates.crt"

	AdminAddress = "127.0.0.1"
	// DefaultAdminPort is Envoy's conventional admin port.
	DefaultAdminPort = 9901

	// StatPrefix names the HTTP connection manager's statistics.
	StatPrefix = "tollgate"
	// ListenerName and RouteConfigName name the one listener and its route table.
	ListenerName    = "tollgate_http"
	RouteConfigName = "tollgate"
)

// Params is everything Render needs. Zero values take the documented defaults.
type Params struct {
	// ListenAddress and ListenPort are where Envoy accepts clients (default 0.0.0.0:8080).
	ListenAddress string
	ListenPort    uint32
	// AdminPort is the admin interface's port on 127.0.0.1 (default 9901).
	AdminPort uint32
	// ExtProc is the extproc gRPC server, spoken to over cleartext HTTP/2.
	ExtProc Upstream
	// PeerSecret, when set, is sent as the initial_metadata entry peerauth.MetadataKey of every
	// GrpcService the bootstrap holds (the ext_proc filters and the ratelimit filter), so that
	// extproc and the RLS can refuse any other caller. The rendered bootstrap then holds the
	// secret: keep it private (envoy-config writes it mode 0600).
	PeerSecret string
	// SidecarTLS, when set, makes Envoy speak mutual TLS to extproc and the RLS (their
	// --tls-cert/--tls-key/--client-ca), presenting its own client certificate.
	SidecarTLS *SidecarTLS
	// MessageTimeout is ext_proc's per-message timeout (default 10s, not Envoy's 200 ms:
	// extproc places credit holds in Postgres on the request path).
	MessageTimeout time.Duration
	// MaxRequestBytes is the request buffer limit: one byte more gets 413 from Envoy. It is
	// also the response buffer limit, and sizes the largest gRPC message Envoy accepts from
	// extproc (see GRPCMaxMessageBytes). Default 32 MiB.
	MaxRequestBytes uint32
	// UpstreamTimeout is the route timeout, which bounds the whole request, every retry and
	// the streamed response included (default 300s: LLM calls are slow). The stream idle
	// timeout is it plus MessageTimeout, so that the route timeout always fires first.
	UpstreamTimeout time.Duration
	// UpstreamCAFile is the CA bundle TLS endpoints are verified against
	// (default DefaultUpstreamCAFile).
	UpstreamCAFile string
	// Clusters are the model clusters, one per (model, region), named by the caller
	// (contract.ModelCluster), and any Direct cluster (the management API's).
	Clusters []Cluster
	// Retry is Envoy's retry and fallback machinery for every model cluster: its route's retry
	// policy and the cluster's outlier detection. Nil takes the defaults.
	Retry *Retry
	// RateLimit, if set, adds the HTTP ratelimit filter right after ext_proc, the RLS
	// cluster (RateLimitClusterName) and the route's RateLimitPerRoute (docs/design.md section
	// 7). Nil renders no rate limiting.
	RateLimit *RateLimit

	// ExtraHTTPFilters are placed after ext_proc (and the ratelimit filter, if RateLimit is
	// set) and before the router, in order.
	ExtraHTTPFilters []*hcmv3.HttpFilter
	// ExtraClusters are appended after the model clusters (e.g. the ratelimit service's,
	// built with GRPCCluster).
	ExtraClusters []*clusterv3.Cluster
	// RouteTypedPerFilterConfig is set on every route (e.g. RateLimitPerRoute).
	RouteTypedPerFilterConfig map[string]*anypb.Any
}

// SidecarTLS is the TLS Envoy uses towards its gRPC sidecars: its client certificate and key
// (the identity the sidecars check against their --client-ca) and the CA that signed the
// sidecars' certificates. Files are PEM, as Envoy reads them at start-up.
type SidecarTLS struct {
	CertFile, KeyFile, CAFile string
}

func (t *SidecarTLS) validate() error {
	if t == nil {
		return nil
	}
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		return errors.New("sidecar TLS: a client certificate, its key and the sidecars' CA are required")
	}
	return nil
}

// Upstream is a host and port, or the path of a Unix socket (Envoy's pipe address), which
// only the gRPC sidecars use.
type Upstream struct {
	Host string
	Port uint32
	Path string // a Unix socket; Host and Port are then unset
}

func (u Upstream) valid() bool { return u.Path != "" || (u.Host != "" && u.Port != 0) }

// Cluster is one model cluster. Priorities[i] is endpoint priority level i: Envoy sends
// traffic to the lowest-numbered level with healthy hosts.
//
// A model cluster (the default) has the per-attempt upstream filters (ext_proc, which translates
// each attempt for the backend it reached, then header_mutation and the codec), outlier
// detection, and a route of its own with the retry policy: the router filter never translates.
type Cluster struct {
	Name       string
	Priorities [][]Endpoint
	// Direct marks a cluster that is not a model's (the management API's): requests reach it as
	// the router filter left them, without upstream filters, outlier detection or retries.
	Direct bool
}

// Endpoint is one backend endpoint of a model cluster.
type Endpoint struct {
	// Backend is tagged into the endpoint's metadata at filter_metadata.tollgate.backend.
	Backend string
	Host    string
	Port    uint32
	// TLS selects a TLS transport socket with SNI Host, verified against UpstreamCAFile.
	TLS bool
	// Weight is the load-balancing weight within its priority level (0 means 1).
	Weight uint32
}

// withDefaults returns p with zero values replaced by defaults.
func (p Params) withDefaults() Params {
	if p.ListenAddress == "" {
		p.ListenAddress = DefaultListenAddress
	}
	if p.ListenPort == 0 {
		p.ListenPort = DefaultListenPort
	}
	if p.AdminPort == 0 {
		p.AdminPort = DefaultAdminPort
	}
	if p.MessageTimeout == 0 {
		p.MessageTimeout = DefaultMessageTimeout
	}
	if p.MaxRequestBytes == 0 {
		p.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if p.UpstreamTimeout == 0 {
		p.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if p.UpstreamCAFile == "" {
		p.UpstreamCAFile = DefaultUpstreamCAFile
	}
	p.RateLimit = p.RateLimit.withDefaults()
	p.Retry = p.Retry.withDefaults()
	return p
}

// validate reports every problem with p at once.
func (p Params) validate() error {
	var errs []error
	if !p.ExtProc.valid() {
		errs = append(errs, errors.New("extproc: host and port, or a unix socket path, are required"))
	}
	if p.MessageTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("message timeout %s: must be at least 1ms", p.MessageTimeout))
	}
	if p.UpstreamTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("upstream timeout %s: must be at least 1ms", p.UpstreamTimeout))
	}
	if err := p.SidecarTLS.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := p.RateLimit.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := p.Retry.validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{ExtProcClusterName: true}
	if p.RateLimit != nil {
		seen[RateLimitClusterName] = true
		if _, ok := p.RouteTypedPerFilterConfig[RateLimitFilterName]; ok {
			errs = append(errs, fmt.Errorf("route typed_per_filter_config[%s]: set by RateLimit", RateLimitFilterName))
		}
	}
	for _, c := range p.ExtraClusters {
		seen[c.GetName()] = true
	}
	for i, c := range p.Clusters {
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("clusters[%d]: name is required", i))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("cluster %q: name used twice", c.Name))
		}
		seen[c.Name] = true
		if len(c.Priorities) == 0 {
			errs = append(errs, fmt.Errorf("cluster %q: no endpoints", c.Name))
		}
		for pi, level := range c.Priorities {
			if len(level) == 0 {
				errs = append(errs, fmt.Errorf("cluster %q priority %d: no endpoints", c.Name, pi))
			}
			for ei, e := range level {
				if e.Host == "" || e.Port == 0 || e.Port > 65535 {
					errs = append(errs, fmt.Errorf("cluster %q priority %d endpoint %d: host and port (1-65535) are required", c.Name, pi, ei))
				}
				if e.Backend == "" {
					errs = append(errs, fmt.Errorf("cluster %q priority %d endpoint %d: backend is required", c.Name, pi, ei))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// GRPCMaxMessageBytes is the largest gRPC message Envoy accepts from extproc for a given
// buffer limit, and the size extproc's gRPC server must accept from Envoy (grpc-go defaults
// to 4 MiB). A request_body message carries the whole buffered body plus headers; a reply
// carries the translated body, which may be larger than the client's (translation adds
// structure), so allow twice the buffer limit plus 1 MiB for headers and metadata.
//
// Envoy: api/envoy/config/core/v3/grpc_service.proto EnvoyGrpc.max_receive_message_length,
// applied by source/common/grpc/async_client_impl.cc (default 0: unlimited); the ext_proc
// integration test ResponseFromExtProcServerTooLarge shows an over-limit reply failing the
// request with 500.
func GRPCMaxMessageBytes(maxRequestBytes uint32) uint32 {
	const headroom = 1 << 20
	n := 2*uint64(maxRequestBytes) + headroom
	if n > 1<<31-1 {
		n = 1<<31 - 1 // grpc-go's limits are ints; keep the value usable on both sides
	}
	return uint32(n)
}
