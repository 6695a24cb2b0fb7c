package extproc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/gemini"
	"github.com/tollgate/tollgate/extproc/openai"
)

// answerModels serves the model listing from the catalog, in the client's protocol; no upstream
// is involved.
func (x *exchange) answerModels() *extprocv3.ProcessingResponse {
	var listed []catalog.ListedModel
	for _, lm := range x.s.catalog.Load().ListedIDs() {
		if x.principal.Allows(lm.Model.ID) {
			listed = append(listed, lm)
		}
	}
	if x.ep.kind == routeModel {
		if lm, ok := x.listedModel(listed); ok {
			return x.answer(x.renderModels([]catalog.ListedModel{lm}, true))
		}
		e := apierror.New(http.StatusNotFound, apierror.CodeInvalidModel, "Model %s is not valid", x.ep.modelID)
		e.Param = "model"
		return x.reject(e)
	}
	return x.answer(x.renderModels(listed, false))
}

// listedModel finds the model a retrieval path names among listed, as chat resolves a model: the
// id percent-decoded (the OpenAI SDK sends eu/gpt-5.4 as eu%2Fgpt-5.4), Gemini's "models/"
// prefix dropped, and an alias answered with its canonical model, in the region it asked for.
func (x *exchange) listedModel(listed []catalog.ListedModel) (catalog.ListedModel, bool) {
	id, err := url.PathUnescape(x.ep.modelID)
	if err != nil {
		return catalog.ListedModel{}, false
	}
	id = strings.TrimPrefix(id, "models/")
	name, prefix := id, ""
	if rest, ok := strings.CutPrefix(id, catalog.EUPrefix); ok {
		name, prefix = rest, catalog.EUPrefix
	}
	if m, ok := x.s.catalog.Load().Lookup(name); ok {
		id = prefix + m.ID
	}
	for _, lm := range listed {
		if lm.ID == id {
			return lm, true
		}
	}
	return catalog.ListedModel{}, false
}

func (x *exchange) renderModels(listed []catalog.ListedModel, one bool) []byte {
	switch x.ep.proto {
	case protoGemini:
		return geminiModels(listed, one)
	case protoAnthropic:
		return anthropicModels(listed, x.s.created, one)
	}
	models := make([]openai.Model, 0, len(listed))
	for _, lm := range listed {
		models = append(models, openai.Model{
			ID:                     lm.ID,
			Created:                x.s.created,
			OwnedBy:                lm.Model.OwnedBy,
			SupportedEndpointTypes: lm.Model.Endpoints,
			Lifecycle:              lm.Model.Lifecycle,
		})
	}
	if one {
		return openai.ModelObject(models[0])
	}
	return openai.ModelList(models)
}

// anthropicModels renders Anthropic's model list (or one model) shape.
func anthropicModels(listed []catalog.ListedModel, created int64, one bool) []byte {
	type model struct {
		Type        string `json:"type"`
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		CreatedAt   string `json:"created_at"`
	}
	at := time.Unix(created, 0).UTC().Format(time.RFC3339)
	data := make([]model, 0, len(listed))
	for _, lm := range listed {
		data = append(data, model{Type: "model", ID: lm.ID, DisplayName: lm.ID, CreatedAt: at})
	}
	if one {
		b, _ := json.Marshal(data[0])
		return b
	}
	page := struct {
		Data    []model `json:"data"`
		HasMore bool    `json:"has_more"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
	}{Data: data}
	if len(data) > 0 {
		page.FirstID, page.LastID = &data[0].ID, &data[len(data)-1].ID
	}
	b, _ := json.Marshal(page)
	return b
}

// geminiModels renders the Gemini API's model list (or one model) shape.
func geminiModels(listed []catalog.ListedModel, one bool) []byte {
	models := make([]openai.Model, 0, len(listed))
	limits := make(map[string]int64, len(listed))
	for _, lm := range listed {
		models = append(models, openai.Model{ID: lm.ID, OwnedBy: lm.Model.OwnedBy, SupportedEndpointTypes: lm.Model.Endpoints, Lifecycle: lm.Model.Lifecycle})
		limits[lm.ID] = lm.Model.MaxOutputTokens
	}
	if one {
		return gemini.ModelObject(models[0], limits[models[0].ID])
	}
	return gemini.ModelList(models, limits)
}

// answer ends the exchange with a 200 JSON ImmediateResponse.
func (x *exchange) answer(body []byte) *extprocv3.ProcessingResponse {
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
