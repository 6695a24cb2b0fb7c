package extproc

import (
	"net/http"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// answerModels serves the model listing from the catalog; no upstream is involved.
func (x *exchange) answerModels() *extprocv3.ProcessingResponse {
	cat := x.s.catalog.Load()
	var models []openai.Model
	for _, lm := range cat.ListedIDs() {
		models = append(models, openai.Model{
			ID:                     lm.ID,
			Created:                x.s.created,
			OwnedBy:                lm.Model.OwnedBy,
			SupportedEndpointTypes: lm.Model.Endpoints,
			Lifecycle:              lm.Model.Lifecycle,
		})
	}
	var body []byte
	if x.ep.kind == routeModel {
		found := false
		for _, m := range models {
			if m.ID == x.ep.modelID {
				body, found = openai.ModelObject(m), true
				break
			}
		}
		if !found {
			e := apierror.New(http.StatusNotFound, apierror.CodeInvalidModel, "Model %s is not valid", x.ep.modelID)
			e.Param = "model"
			return x.reject(e)
		}
	} else {
		body = openai.ModelList(models)
	}
	x.closed = true
	var m mutation
	m.Set("content-type", "application/json")
	m.Set("x-request-id", x.requestID)
	m.Set("request-id", x.requestID)
	m.Set(headerRequestID, x.requestID)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode_OK},
		Headers: m.proto(),
		Body:    body,
	}}}
}
