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

// ProviderError turns an OpenAI-kind provider's error response into the gateway's error, keeping
// the provider's message when it has one: the client should see why its request was refused.
func ProviderError(status int, body []byte) *apierror.Error {
	e := apierror.FromStatus(status)
	var b struct {
		Error struct {
			Message string `json:"message"`
			Param   string `json:"param"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil && b.Error.Message != "" && status != 401 && status != 403 {
		e.Message = "Upstream provider: " + b.Error.Message
		e.Param = b.Error.Param
	}
	return e
}
