package extproc

import (
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/apierror"
)

// Replies to Envoy: the ProcessingResponse shapes the exchange answers with, and the dynamic
// metadata it writes.

// reject ends the exchange with an ImmediateResponse in the client's protocol shape.
func (x *exchange) reject(e *apierror.Error) *extprocv3.ProcessingResponse {
	x.closed = true
	body := x.errorBody(e)
	var m mutation
	m.Set("content-type", "application/json")
	setRequestIDHeaders(&m, x.requestID)
	for k, v := range e.Headers {
		m.Set(k, v)
	}
	return immediateReply(e.Status, &m, body, "tollgate_"+e.Code, x.tokenMetadata(0, 0))
}

// tokenMetadata is what Envoy's ratelimit filter reads after the response to charge token quotas.
// It is always set, zero on errors: a missing value would make hits_addend invalid (ai-gateway
// #1786).
func (x *exchange) tokenMetadata(in, out int64) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{
		Fields: map[string]*structpb.Value{
			contract.InputTokensKey:  structpb.NewNumberValue(float64(in)),
			contract.OutputTokensKey: structpb.NewNumberValue(float64(out)),
			contract.TotalTokensKey:  structpb.NewNumberValue(float64(in + out)),
		},
	})}}
}

// runningTotal is the token metadata of a streamed chunk before the end: only total_tokens,
// the one value the ratelimit filter reads (hits_addend). It goes out with every chunk, so one
// message is built per stream and its number updated in place: the reply that carried it has
// been marshalled (stream.Send) before the next chunk is handled.
func (x *exchange) runningTotal(total int64) *structpb.Struct {
	if x.runningMD == nil {
		x.runningTotalTokens = &structpb.Value_NumberValue{}
		x.runningMD = &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{
			Fields: map[string]*structpb.Value{contract.TotalTokensKey: {Kind: x.runningTotalTokens}},
		})}}
	}
	x.runningTotalTokens.NumberValue = float64(total)
	return x.runningMD
}

func (x *exchange) metadata(fields map[string]any) *structpb.Struct {
	inner, err := structpb.NewStruct(fields)
	if err != nil {
		x.log().Error("build dynamic metadata", "err", err)
		return nil
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(inner)}}
}

// streamResponseBody answers response headers with cr and switches the response body to
// STREAMED. mode_override always copies both body modes (docs/envoy.md 1.4); the request body is
// long gone, so its mode is restated unchanged.
func streamResponseBody(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	r := responseHeadersReply(cr, nil)
	r.ModeOverride = &filterv3.ProcessingMode{
		RequestBodyMode:  filterv3.ProcessingMode_BUFFERED,
		ResponseBodyMode: filterv3.ProcessingMode_STREAMED,
	}
	return r
}

// requestHeadersReply, requestBodyReply, responseHeadersReply and responseBodyReply answer the
// message of their name with cr (nil continues unchanged), writing md (nil: nothing) into the
// request's dynamic metadata. Envoy matches replies to messages by kind, so each message gets
// the reply of its own kind.
func requestHeadersReply(cr *extprocv3.CommonResponse, md *structpb.Struct) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: cr}}, DynamicMetadata: md}
}

func requestBodyReply(cr *extprocv3.CommonResponse, md *structpb.Struct) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{Response: cr}}, DynamicMetadata: md}
}

func responseHeadersReply(cr *extprocv3.CommonResponse, md *structpb.Struct) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: cr}}, DynamicMetadata: md}
}

func responseBodyReply(cr *extprocv3.CommonResponse, md *structpb.Struct) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: cr}}, DynamicMetadata: md}
}

// immediateReply ends the stream with a response of the gateway's own: status, the headers of m,
// body, and details for Envoy's access log (response code details).
func immediateReply(status int, m *mutation, body []byte, details string, md *structpb.Struct) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Headers: m.proto(),
		Body:    body,
		Details: details,
	}}, DynamicMetadata: md}
}

// replaceBody is the body mutation that replaces a body (or a streamed chunk) with b.
func replaceBody(b []byte) *extprocv3.BodyMutation {
	return &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: b}}
}

// setRequestIDHeaders names the gateway's request id in every header a client may read it from:
// x-request-id and request-id (the OpenAI and Anthropic SDKs read these) and the gateway's own.
func setRequestIDHeaders(m *mutation, id string) {
	m.Set("x-request-id", id)
	m.Set("request-id", id)
	m.Set(headerRequestID, id)
}
