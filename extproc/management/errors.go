package management

import (
	"encoding/json"
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
)

// errorBody is OpenAI's error shape.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// writeError writes e in OpenAI's shape; e is safe to show by construction (apierror).
func writeError(w http.ResponseWriter, e *apierror.Error) {
	var body errorBody
	body.Error.Message, body.Error.Type, body.Error.Code = e.Message, e.Type(), e.Code
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away, or v is ours and encodable
}

func unavailable() *apierror.Error {
	return apierror.New(http.StatusServiceUnavailable, apierror.CodeServiceUnavailable,
		"The management API cannot reach the ledger right now; retry shortly")
}
