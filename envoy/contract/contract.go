// Package contract holds, once, every name that Tollgate's Envoy bootstrap (envoy/bootstrap)
// and its sidecars (extproc, the ratelimit service) must agree on: headers, the dynamic-metadata
// namespace and its keys, cluster names, ext_proc request attributes and the rate-limit
// descriptors. Each side imports these constants instead of spelling the strings itself, so a
// rename reaches both or fails to compile; bootstrap's contract test checks that a rendered
// bootstrap uses exactly these names.
//
// The package holds names only: no logic beyond composing them, and no dependencies, so that
// every side can import it.
package contract

// Request routing.
const (
	// ClusterHeader is the request header in which extproc names the cluster to route to. The
	// bootstrap matches it, exactly, in one route per model cluster and the management cluster,
	// and reads it in the catch-all route's cluster_header. extproc removes it again before a
	// request reaches a provider.
	ClusterHeader = "x-tollgate-cluster"
	// InternalHeaderPrefix marks the gateway's own headers (ClusterHeader among them): trusted
	// routing inputs a client must never set, and that a provider never receives.
	InternalHeaderPrefix = "x-tollgate-"

	// ManagementCluster is the cluster of the management API, extproc's own HTTP server, to
	// which extproc routes /v1/management/* requests of management keys.
	ManagementCluster = "tollgate_management"
	// modelClusterPrefix and euClusterSuffix compose ModelCluster.
	modelClusterPrefix = "model_"
	euClusterSuffix    = "_eu"
)

// ModelCluster is the name of the cluster that serves modelID: its backends in the EU region
// when eu is set, else its global ones. The catalog names a request's cluster with it
// (catalog.Route.Cluster, which extproc writes in ClusterHeader) and the bootstrap names the
// cluster and its route with it. It lives here, not in the catalog, because the name means
// nothing to the catalog: it is the one key both sides of Envoy's configuration must spell alike.
func ModelCluster(modelID string, eu bool) string {
	if eu {
		return modelClusterPrefix + modelID + euClusterSuffix
	}
	return modelClusterPrefix + modelID
}

// Dynamic metadata. Envoy's ext_proc filters accept metadata from extproc in MetadataNamespace
// only (metadata_options.receiving_namespaces; anything else is dropped silently), forward it to
// the upstream filter's streams (forwarding_namespaces), and the ratelimit filter, the
// header_mutation upstream filter and the access log read it as %DYNAMIC_METADATA(tollgate:key)%.
// The same namespace tags each model endpoint's filter_metadata with its backend.
const (
	MetadataNamespace = "tollgate"

	// RequestIDKey is the gateway's id of the request (a string, "req_…"), written by the router
	// filter's request-body reply; each attempt's upstream filter reads it from the forwarded
	// metadata to find the request it belongs to.
	RequestIDKey = "request_id"
	// OrgIDKey, KeyIDKey and ModelKey are the caller's organisation and key and the canonical
	// model (strings), written with RequestIDKey (org and key also by the request-headers reply
	// to a management request); the rate-limit descriptors are built from them.
	OrgIDKey = "org_id"
	KeyIDKey = "key_id"
	ModelKey = "model"
	// InputTokensKey, OutputTokensKey and TotalTokensKey are the response's token counts
	// (numbers, 0 on errors), on the last response reply; TotalTokensKey also on every streamed
	// chunk's reply, as a running total. The ratelimit filter's apply_on_stream_done entries
	// read TotalTokensKey as hits_addend.
	InputTokensKey  = "input_tokens"
	OutputTokensKey = "output_tokens"
	TotalTokensKey  = "total_tokens"
	// ContentLengthKey is the byte length of the body an attempt's upstream filter reply
	// substituted (a decimal string); the header_mutation upstream filter sets content-length
	// from it.
	ContentLengthKey = "content_length"

	// BackendMetadataKey is the key, under an endpoint's filter_metadata[MetadataNamespace],
	// holding the catalog backend the endpoint serves (BackendName).
	BackendMetadataKey = "backend"
)

// BackendName is the value tagged at filter_metadata.tollgate.backend on a model endpoint:
// "<provider>/<upstream_model>", which names one catalog backend (a chain never holds the same
// provider and upstream model twice). extproc's catalog names its backends the same way
// (catalog.Backend.Key).
func BackendName(provider, upstreamModel string) string {
	return provider + "/" + upstreamModel
}

// ext_proc request attributes: the bootstrap lists them in the filters' request_attributes and
// Envoy sends their values to extproc in ProcessingRequest.attributes[ExtProcAttributesKey],
// keyed by the expression, on the first message of the request direction.
const (
	// ExtProcAttributesKey is the key of ProcessingRequest.attributes under which Envoy puts
	// the evaluated request_attributes: the ext_proc filter's name.
	ExtProcAttributesKey = "envoy.filters.http.ext_proc"
	// RequestIDAttribute is Envoy's id of the HTTP request (its x-request-id, generated by the
	// connection manager for every external request), which both ext_proc filters request, so
	// that extproc can tie an attempt's stream to the router filter's.
	RequestIDAttribute = "request.id"
	// UpstreamBackendAttribute is the backend of the endpoint an attempt reached, which only
	// the upstream ext_proc filter can evaluate (a string).
	UpstreamBackendAttribute = "xds.upstream_host_metadata.filter_metadata['" + MetadataNamespace + "']['" + BackendMetadataKey + "']"
)

// Rate limits: the descriptors Envoy's ratelimit filter sends the ratelimit service. Each is
// {DescriptorQuota: a quota}, {DescriptorOrg}, then optionally {DescriptorKey}, then optionally
// {DescriptorModel}, in that order.
const (
	// RateLimitDomain is the domain of every RateLimitRequest.
	RateLimitDomain = "tollgate"

	DescriptorQuota = "quota"
	DescriptorOrg   = "org"
	DescriptorKey   = "key"
	DescriptorModel = "model"

	// The quotas, the value of a descriptor's first entry.
	QuotaRequestsPerMinute = "rpm"
	QuotaTokensPerMinute   = "tpm"
	QuotaTokensPerDay      = "tpd"
	// QuotaManagementRequestsPerMinute counts one key's management API requests, apart from
	// its organisation's model quotas.
	QuotaManagementRequestsPerMinute = "mgmt_rpm"
)
