package extproc

import (
	"net/http"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// routeManagement sends /v1/management/* to the management API, for management keys only. The
// management server authenticates the key again and scopes every answer to its organisation, so
// nothing here is trusted downstream but the route.
//
// The reply also carries the org and key as dynamic metadata: the management route's rate limit
// (bootstrap.ManagementRateLimitPerRoute, a per-key mgmt_rpm) is built from it. A management
// request has no body, so this headers reply is the last word before the ratelimit filter runs.
func (x *exchange) routeManagement(m *mutation) *extprocv3.ProcessingResponse {
	if x.principal.Kind != ledger.KeyManagement {
		return x.reject(apierror.New(http.StatusForbidden, apierror.CodeAccessDenied, "The management API needs a management key; this is a standard key"))
	}
	m.Set(contract.ClusterHeader, contract.ManagementCluster)
	return requestHeadersReply(&extprocv3.CommonResponse{HeaderMutation: m.proto(), ClearRouteCache: true},
		x.metadata(map[string]any{
			contract.RequestIDKey: x.requestID,
			contract.OrgIDKey:     x.principal.OrgID,
			contract.KeyIDKey:     x.principal.KeyID,
		}))
}
