package management

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/ledger"
)

type balanceResponse struct {
	Object          string `json:"object"`
	OrgID           string `json:"org_id"`
	Currency        string `json:"currency"`
	Balance         string `json:"balance"`   // USD, six decimals
	Held            string `json:"held"`      // USD reserved by requests in flight
	Available       string `json:"available"` // balance - held: what new requests can use
	BalanceMicros   int64  `json:"balance_micros"`
	HeldMicros      int64  `json:"held_micros"`
	AvailableMicros int64  `json:"available_micros"`
}

func (h *handler) balance(w http.ResponseWriter, r *http.Request, p ledger.Principal) {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	o, err := h.store.Org(ctx, p.OrgID)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	avail := o.BalanceMicros - o.HeldMicros
	writeJSON(w, http.StatusOK, balanceResponse{
		Object: "balance", OrgID: o.ID, Currency: "USD",
		Balance: billing.FormatMicros(o.BalanceMicros), Held: billing.FormatMicros(o.HeldMicros),
		Available:     billing.FormatMicros(avail),
		BalanceMicros: o.BalanceMicros, HeldMicros: o.HeldMicros, AvailableMicros: avail,
	})
}
