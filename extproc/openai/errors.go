package openai

import (
	"encoding/json"

	"github.com/tollgate/tollgate/extproc/apierror"
)

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// ErrorBody renders e in OpenAI's error shape: {"error":{"message","type","param","code"}}, with
// the stable code in "code" and seed 003's category in "type".
func ErrorBody(e *apierror.Error) []byte {
	var param *string
	if e.Param != "" {
		param = &e.Param
	}
	b, _ := json.Marshal(errorBody{Error: errorObject{Message: e.Message, Type: e.Type(), Param: param, Code: e.Code}})
	return b
}

// ProviderError turns an error response that came back from an OpenAI-kind upstream into the
// gateway's error. A body in OpenAI's error shape is the provider's own answer: its message is
// kept (the client should see why its request was refused) and any 5xx becomes 502, the provider's
// failure. Anything else is Envoy's local reply (503 when no upstream could be reached, 504 on
// timeout) and is reported by status.
func ProviderError(status int, body []byte) *apierror.Error {
	var b struct {
		Error *struct {
			Message string `json:"message"`
			Param   string `json:"param"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || b.Error == nil {
		return apierror.FromStatus(status)
	}
	e := apierror.FromStatus(status)
	if status >= 500 {
		e = apierror.New(502, apierror.CodeProviderError, "The upstream provider failed (status %d)", status)
	}
	if b.Error.Message != "" && status != 401 && status != 403 {
		// A 401/403 concerns the operator's credentials, which the client must not learn about.
		e.Message = "Upstream provider: " + b.Error.Message
		e.Param = b.Error.Param
	}
	return e
}
