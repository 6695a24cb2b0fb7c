package extproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// exchange is the state of one HTTP request across its ext_proc messages. It is owned by the
// stream's goroutine.
type exchange struct {
	s         *Server
	requestID string
	// envoyID is Envoy's id of the HTTP request (the request.id attribute) and peer the
	// authenticated caller of the router filter's stream: an attempt must match both.
	envoyID   string
	peer      string
	start     time.Time
	ep        endpoint
	principal ledger.Principal
	// clientHeaders are the client's protocol headers (anthropic-version, anthropic-beta), which
	// its codec reads at parse time; an attempt
	// that reaches an Anthropic provider restores (an earlier attempt may have removed them).
	clientHeaders map[string]string

	// Set once the request is admitted and sent upstream.
	req      *clientRequest
	route    catalog.Route
	backend  *catalog.Backend
	provider providerCodec
	// The attempt streams record the backends they reached here.
	attemptMu   sync.Mutex
	lastAttempt *catalog.Backend
	attempts    []ledger.Attempt
	// The first attempt places the hold (holdForAttempt), under
	// attemptMu; holdTried says it did, holdErr is its failure, which the router filter answers
	// with, and finished stops an attempt from holding for a request that is already over.
	holdTried bool
	holdErr   *apierror.Error
	finished  bool
	// countEstimated is set when a token count's last attempt was answered with the gateway's
	// estimate rather than forwarded (counttokens.go).
	countEstimated bool
	// held is set while the request holds credit that neither settlement nor release has
	// returned; holdPlaced and heldMicros say that a hold was placed and for how much, which
	// caps the settlement.
	held       bool
	holdPlaced bool
	heldMicros int64

	status int
	// respond answers each response body message: chosen once, from the response headers
	// (response.go), as relay, answerBuffered, answerStream or answerError.
	respond func(*extprocv3.HttpBody) *extprocv3.ProcessingResponse
	// proc translates the response stream, when respond is answerStream.
	proc streamProcessor
	// gatewayLimited is set when the response is the ratelimit filter's 429: the gateway's own
	// quota, not a provider's.
	gatewayLimited bool
	// streamFailed is set once the provider's stream proved malformed and the client's was ended.
	streamFailed bool
	firstByte    time.Time
	settled      bool
	// unansweredStatus is set when the request is charged without a response: why it had none
	// (see chargeUnanswered).
	unansweredStatus int
	// runningMD is the streamed chunks' token metadata, reused (runningTotal).
	runningMD          *structpb.Struct
	runningTotalTokens *structpb.Value_NumberValue
	// closed is set once an ImmediateResponse has ended the exchange.
	closed bool
}

func newExchange(s *Server) *exchange {
	return &exchange{s: s, start: s.now(), requestID: newRequestID()}
}

// served is the model that serves the request: the requested one, or the fallback whose backend
// was chosen when the requested model has none in the region.
func (x *exchange) served() *catalog.Model { return x.backend.ModelRef() }

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

func (x *exchange) log() *slog.Logger { return x.s.log.With("request_id", x.requestID) }

// handle answers one message. It returns nil only for a message it cannot answer.
func (x *exchange) handle(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.onRequestHeaders(ctx, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.onRequestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return x.onResponseHeaders(r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return x.onResponseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

// finish runs when the stream ends, however it ends. A stream the client abandoned is charged
// for what was delivered; a request that reached a provider and got no response is charged its
// input; only one that never left the gateway is released for free.
func (x *exchange) finish() {
	x.s.unregister(x)
	// An attempt may have placed the hold without the response ever coming back here.
	x.attemptMu.Lock()
	x.finished = true
	x.attemptMu.Unlock()
	switch {
	case x.proc != nil && !x.settled:
		x.settleStream()
	case x.held && !x.settled && x.reachedProvider():
		x.chargeInput()
	case x.held && !x.settled:
		x.release()
	}
}
