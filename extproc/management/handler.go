package management

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/auth"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// KeyLookup resolves a presented API key. *auth.Cache implements it. Unknown or revoked keys
// are auth.ErrUnknownKey (or ledger.ErrNotFound); any other error means the lookup itself
// failed.
type KeyLookup interface {
	Authenticate(ctx context.Context, key string) (ledger.Principal, error)
}

// queryTimeout bounds a JSON query; exportTimeout bounds a whole CSV export, which streams.
const (
	queryTimeout  = 10 * time.Second
	exportTimeout = 5 * time.Minute
)

type handler struct {
	store *ledger.Store
	keys  KeyLookup
	log   *slog.Logger
}

// New returns the management API's handler. It serves the paths under /v1/management/ listed
// in the package documentation and answers anything else with 404 in OpenAI's shape. It is
// safe for concurrent use.
func New(store *ledger.Store, keys KeyLookup, log *slog.Logger) http.Handler {
	h := &handler{store: store, keys: keys, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/management/balance", h.authed(h.balance))
	mux.HandleFunc("GET /v1/management/usage", h.authed(h.usage))
	mux.HandleFunc("GET /v1/management/usage.csv", h.authed(h.usageCSV))
	mux.HandleFunc("GET /v1/management/request-logs", h.authed(h.requestLogs))
	mux.HandleFunc("GET /v1/management/request-logs.csv", h.authed(h.requestLogsCSV))
	mux.HandleFunc("/", h.authed(func(w http.ResponseWriter, r *http.Request, _ ledger.Principal) {
		writeError(w, apierror.New(http.StatusNotFound, apierror.CodeNotFound, "Unknown management API path %s %s", r.Method, r.URL.Path))
	}))
	return mux
}

type authedFunc func(w http.ResponseWriter, r *http.Request, p ledger.Principal)

// authed admits only requests bearing a management key, and hands the handler its principal.
func (h *handler) authed(next authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			writeError(w, apierror.New(http.StatusUnauthorized, apierror.CodeAuthInvalid,
				"Missing API key: send a management key as \"Authorization: Bearer <key>\""))
			return
		}
		p, err := h.keys.Authenticate(r.Context(), key)
		switch {
		case errors.Is(err, auth.ErrUnknownKey), errors.Is(err, ledger.ErrNotFound):
			writeError(w, apierror.New(http.StatusUnauthorized, apierror.CodeAuthInvalid, "Invalid API key"))
			return
		case err != nil:
			h.log.Error("management: look up api key", "err", err)
			writeError(w, unavailable())
			return
		case p.Kind != ledger.KeyManagement:
			writeError(w, apierror.New(http.StatusForbidden, apierror.CodeAccessDenied,
				"This API key cannot use the management API; use a management key"))
			return
		}
		next(w, r, p)
	}
}

// fail reports a ledger error: an invalid argument is the client's, anything else is logged
// and reported as unavailable without detail.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, p ledger.Principal, err error) {
	if errors.Is(err, ledger.ErrInvalid) {
		writeError(w, apierror.InvalidParam("", "Invalid query: %v", err))
		return
	}
	h.log.Error("management: query", "path", r.URL.Path, "org_id", p.OrgID, "err", err)
	writeError(w, unavailable())
}
