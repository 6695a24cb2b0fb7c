package extproc

import (
	"net/http"
	"net/url"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/catalog"
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
	return clientFor(x.ep.proto).models(listed, x.s.created, one)
}

// answer ends the exchange with a 200 JSON ImmediateResponse.
func (x *exchange) answer(body []byte) *extprocv3.ProcessingResponse {
	x.closed = true
	var m mutation
	m.Set("content-type", "application/json")
	setRequestIDHeaders(&m, x.requestID)
	return immediateReply(http.StatusOK, &m, body, "", nil)
}
