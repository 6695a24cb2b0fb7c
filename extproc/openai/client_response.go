package openai

import (
	"encoding/json"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/sse"
)

// EncodeResponse renders a pivot response for an OpenAI client, naming model.
func EncodeResponse(c *ChatCompletion, model string) []byte {
	out := *c
	out.Model, out.Object = model, "chat.completion"
	for i := range out.Choices {
		if out.Choices[i].Logprobs == nil {
			out.Choices[i].Logprobs = json.RawMessage("null")
		}
	}
	b, _ := json.Marshal(out)
	return b
}

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

// StreamError appends an error event in OpenAI's shape and ends the stream.
func StreamError(dst []byte, e *apierror.Error) []byte {
	dst = sse.AppendData(dst, ErrorBody(e))
	return sse.AppendData(dst, doneData)
}

// ModelList renders models as OpenAI's list object.
func ModelList(models []Model) []byte {
	for i := range models {
		models[i].Object = "model"
	}
	if models == nil {
		models = []Model{}
	}
	b, _ := json.Marshal(struct {
		Object string  `json:"object"`
		Data   []Model `json:"data"`
	}{"list", models})
	return b
}

// ModelObject renders one model.
func ModelObject(m Model) []byte {
	m.Object = "model"
	b, _ := json.Marshal(m)
	return b
}
