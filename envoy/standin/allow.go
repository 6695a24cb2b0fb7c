package standin

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// implemented lists, per message type, the fields the stand-in implements. Any other field
// that is set, anywhere in the bootstrap or in a typed_config, makes New fail with its path:
// the stand-in never silently ignores configuration. Enum values and cross-references are
// checked by config.go. A message type missing from this table cannot be used at all.
var implemented = map[protoreflect.FullName][]string{
	"envoy.config.bootstrap.v3.Bootstrap":                 {"admin", "static_resources"},
	"envoy.config.bootstrap.v3.Admin":                     {"address"},
	"envoy.config.bootstrap.v3.Bootstrap.StaticResources": {"listeners", "clusters"},
	"envoy.config.core.v3.Address":                        {"socket_address", "pipe"}, // pipe: gRPC clusters only
	"envoy.config.core.v3.Pipe":                           {"path"},
	"envoy.config.core.v3.SocketAddress":                  {"address", "port_value"},

	"envoy.config.listener.v3.Listener":    {"name", "address", "filter_chains", "per_connection_buffer_limit_bytes"},
	"envoy.config.listener.v3.FilterChain": {"filters"},
	"envoy.config.listener.v3.Filter":      {"name", "typed_config"},

	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": {
		"codec_type", "stat_prefix", "route_config", "http_filters", "stream_idle_timeout",
		// Who is trusted (connmanager.go); xff_num_trusted_hops only 0.
		"use_remote_address", "xff_num_trusted_hops", "internal_address_config", "skip_xff_append",
		"generate_request_id", "preserve_external_request_id",
	},
	// No cidr_ranges: no address is internal. unix_sockets never applies to the TCP listener.
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig": {"unix_sockets"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                                  {"name", "typed_config"},
	"envoy.config.route.v3.RouteConfiguration":                                                                {"name", "virtual_hosts"},
	"envoy.config.route.v3.VirtualHost":                                                                       {"name", "domains", "routes"},
	"envoy.config.route.v3.Route":                                                                             {"name", "match", "route", "typed_per_filter_config"},
	"envoy.config.route.v3.RouteMatch":                                                                        {"prefix", "path", "headers"},
	// Header matching: an exact string_match only (routes.go).
	"envoy.config.route.v3.HeaderMatcher": {"name", "string_match"},
	"envoy.config.route.v3.RouteAction": {
		"cluster", "cluster_header", "cluster_not_found_response_code", "timeout", "auto_host_rewrite",
		"retry_policy",
	},
	// Retries (retry.go). retry_on tokens and the retry priority are checked by retryconfig.go.
	"envoy.config.route.v3.RetryPolicy": {
		"retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout", "retry_priority",
		"retriable_status_codes", "retry_back_off",
	},
	"envoy.config.route.v3.RetryPolicy.RetryPriority":                                 {"name", "typed_config"},
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":                                  {"base_interval", "max_interval"},
	"envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig": {"update_frequency"},

	"envoy.extensions.filters.http.router.v3.Router": {"suppress_envoy_headers"},
	"envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor": {
		"grpc_service", "failure_mode_allow", "processing_mode", "message_timeout", "max_message_timeout",
		"stat_prefix", "mutation_rules", "allow_mode_override", "allowed_override_modes",
		"disable_immediate_response", "metadata_options", "route_cache_action",
		"disable_clear_route_cache", "status_on_error",
		"request_attributes", // request.id; upstream filters also host metadata (upstreamfilters.go)
	},
	"envoy.config.core.v3.GrpcService":           {"envoy_grpc", "initial_metadata"},
	"envoy.config.core.v3.GrpcService.EnvoyGrpc": {"cluster_name", "max_receive_message_length"},
	"envoy.extensions.filters.http.ext_proc.v3.ProcessingMode": {
		"request_header_mode", "response_header_mode", "request_body_mode", "response_body_mode",
		"request_trailer_mode", "response_trailer_mode",
	},
	"envoy.extensions.filters.http.ext_proc.v3.MetadataOptions":                    {"forwarding_namespaces", "receiving_namespaces"},
	"envoy.extensions.filters.http.ext_proc.v3.MetadataOptions.MetadataNamespaces": {"untyped"},
	"envoy.type.v3.HttpStatus": {"code"},
	"envoy.config.common.mutation_rules.v3.HeaderMutationRules": {
		"allow_all_routing", "allow_envoy", "disallow_system", "disallow_all",
		"allow_expression", "disallow_expression", "disallow_is_error",
	},
	"envoy.type.matcher.v3.RegexMatcher": {"regex"},

	// The HTTP ratelimit filter (ratelimit.go). Its filter-level rate_limits are refused:
	// Tollgate's entries live in RateLimitPerRoute, the only place Envoy honours
	// apply_on_stream_done and hits_addend.
	"envoy.extensions.filters.http.ratelimit.v3.RateLimit": {
		"domain", "timeout", "failure_mode_deny", "rate_limit_service", "enable_x_ratelimit_headers",
		"disable_x_envoy_ratelimited_header", "rate_limited_status", "status_on_error", "stat_prefix",
	},
	"envoy.config.ratelimit.v3.RateLimitServiceConfig":             {"grpc_service", "transport_api_version"},
	"envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute": {"rate_limits", "domain"},
	"envoy.config.route.v3.RateLimit":                              {"actions", "hits_addend", "apply_on_stream_done"},
	"envoy.config.route.v3.RateLimit.HitsAddend":                   {"number", "format"},
	"envoy.config.route.v3.RateLimit.Action":                       {"request_headers", "generic_key", "metadata"},
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders":        {"header_name", "descriptor_key", "skip_if_absent"},
	"envoy.config.route.v3.RateLimit.Action.GenericKey":            {"descriptor_value", "descriptor_key"},
	"envoy.config.route.v3.RateLimit.Action.MetaData": {
		"descriptor_key", "metadata_key", "default_value", "source", "skip_if_absent",
	},
	"envoy.type.metadata.v3.MetadataKey":             {"key", "path"},
	"envoy.type.metadata.v3.MetadataKey.PathSegment": {"key"},

	"envoy.config.cluster.v3.Cluster": {
		"name", "type", "connect_timeout", "load_assignment", "typed_extension_protocol_options",
		"transport_socket", "transport_socket_matches", "outlier_detection",
	},
	// Consecutive-5xx ejection only (outlier.go); success-rate ejection must be off.
	"envoy.config.cluster.v3.OutlierDetection": {
		"consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent",
		"enforcing_consecutive_5xx", "enforcing_success_rate",
	},
	"envoy.config.cluster.v3.Cluster.TransportSocketMatch": {"name", "match", "transport_socket"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment":       {"cluster_name", "endpoints"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints":         {"lb_endpoints", "priority"},
	"envoy.config.endpoint.v3.LbEndpoint":                  {"endpoint", "metadata", "load_balancing_weight"},
	"envoy.config.endpoint.v3.Endpoint":                    {"address", "hostname"},
	"envoy.config.core.v3.Metadata":                        {"filter_metadata"},
	"envoy.config.core.v3.TransportSocket":                 {"name", "typed_config"},
	"envoy.config.core.v3.DataSource":                      {"filename", "inline_string", "inline_bytes"},

	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {"explicit_http_config", "http_filters"},
	// Upstream HTTP filters (upstreamfilters.go, headermutation.go).
	"envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec":             {},
	"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation":           {"mutations"},
	"envoy.extensions.filters.http.header_mutation.v3.Mutations":                {"request_mutations"},
	"envoy.config.common.mutation_rules.v3.HeaderMutation":                      {"remove", "append"},
	"envoy.config.core.v3.HeaderValueOption":                                    {"header", "append_action", "keep_empty_value"},
	"envoy.config.core.v3.HeaderValue":                                          {"key", "value"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig": {"http_protocol_options", "http2_protocol_options"},
	"envoy.config.core.v3.Http1ProtocolOptions":                                 {},
	"envoy.config.core.v3.Http2ProtocolOptions":                                 {},

	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":           {"sni", "common_tls_context"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext":             {"validation_context", "tls_certificates", "alpn_protocols"},
	"envoy.extensions.transport_sockets.tls.v3.TlsCertificate":               {"certificate_chain", "private_key"},
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": {"trusted_ca", "match_typed_subject_alt_names"},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher":        {"san_type", "matcher"},
	"envoy.type.matcher.v3.StringMatcher":                                    {"exact"},
}

// opaque messages are accepted whole: well-known value types and free-form structs.
var opaque = map[protoreflect.FullName]bool{
	"google.protobuf.Struct":      true,
	"google.protobuf.Value":       true,
	"google.protobuf.ListValue":   true,
	"google.protobuf.Duration":    true,
	"google.protobuf.BoolValue":   true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.UInt64Value": true,
	"google.protobuf.StringValue": true,
}

// refuseUnimplemented returns one error per set field the stand-in does not implement,
// naming its path (typed configs appear as name(Type)).
func refuseUnimplemented(m proto.Message) error {
	var errs []error
	walkFields(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), &errs)
	return errors.Join(errs...)
}

func walkFields(m protoreflect.Message, path string, errs *[]error) {
	name := m.Descriptor().FullName()
	if opaque[name] {
		return
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: typed config %q: %w", path, a.GetTypeUrl(), err))
			return
		}
		walkFields(inner.ProtoReflect(), fmt.Sprintf("%s(%s)", path, inner.ProtoReflect().Descriptor().FullName()), errs)
		return
	}
	allowed, known := implemented[name]
	if !known {
		*errs = append(*errs, fmt.Errorf("%s: %s is not implemented by the stand-in", path, name))
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		if !slices.Contains(allowed, string(fd.Name())) {
			*errs = append(*errs, fmt.Errorf("%s: field not implemented by the stand-in", p))
			return true
		}
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walkFields(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()), errs)
					return true
				})
			}
		case fd.IsList():
			if fd.Kind() == protoreflect.MessageKind {
				for i := 0; i < v.List().Len(); i++ {
					walkFields(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), errs)
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			walkFields(v.Message(), p, errs)
		}
		return true
	})
}
