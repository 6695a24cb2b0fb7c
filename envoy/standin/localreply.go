package standin

import (
	"net/http"
	"strconv"
	"strings"
)

// sendLocalReply answers the client with a response Envoy generates itself (router 503/504,
// 413, 408, ext_proc errors and immediate responses). How it travels depends on how far the
// response has gone:
//   - nothing yet: through every encoder filter, so ext_proc's encode path sees it
//     (response_headers with its :status, then its body) unless ext_proc's own processing
//     is complete, which is always the case for ext_proc's own errors and immediate
//     responses, as they set processing_complete_ first;
//   - response headers held by a filter: straight to the client, bypassing the filters and
//     replacing the held response;
//   - headers already sent: the stream is reset.
//
// Envoy: source/common/http/filter_manager.cc DownstreamFilterManager::sendLocalReply,
// sendLocalReplyViaFilterChain, sendDirectLocalReply; ext_proc.cc Filter::encodeHeaders
// (skips onHeaders when processing_complete_).
func (s *stream) sendLocalReply(code int, body []byte, mutate func(*headerMap), details string) {
	if s.ended {
		return
	}
	s.info.ResponseCodeDetails = details
	h := localReplyHeaders(code, body, mutate)
	switch s.respState {
	case respNone:
		var ch <-chan chunk
		if len(body) > 0 && !s.head {
			c := make(chan chunk, 1)
			c <- chunk{data: body, eos: true}
			close(c)
			ch = c
		}
		s.encode(&response{headers: h, body: ch})
	case respHeld:
		s.cancelUpstream(errLocalReply)
		s.writeHeaders(h)
		s.writeBody(body)
		s.endResponse()
	case respSent:
		s.reset()
	}
}

// localReplyHeaders is Http::Utility::sendLocalReply's header set: :status, the caller's
// mutations, then content-length and content-type (text/plain unless set) for a non-empty
// body, or neither for an empty one.
//
// Envoy: source/common/http/utility.cc Utility::sendLocalReply.
func localReplyHeaders(code int, body []byte, mutate func(*headerMap)) *headerMap {
	h := &headerMap{}
	h.add(":status", strconv.Itoa(code))
	if mutate != nil {
		mutate(h)
	}
	if len(body) > 0 {
		h.set("content-length", strconv.Itoa(len(body)))
		if !h.has("content-type") {
			h.set("content-type", "text/plain")
		}
	} else {
		h.remove("content-length")
		h.remove("content-type")
	}
	return h
}

// writeHeaders sends h to the client. The connection manager overwrites server with
// "envoy" (server_header_transformation OVERWRITE, server_name default) after the filters.
func (s *stream) writeHeaders(h *headerMap) {
	if s.respState == respSent || s.ended {
		return
	}
	status, err := strconv.Atoi(statusOf(h))
	if err != nil || status < 100 || status > 999 {
		// Envoy: FilterManager::encodeHeaders checkRequiredResponseHeaders → 502.
		status = http.StatusBadGateway
	}
	out := s.w.Header()
	for _, e := range h.entries {
		if strings.HasPrefix(e.key, ":") || hopByHop[e.key] {
			continue
		}
		out.Add(e.key, e.value)
	}
	out.Set("Server", "envoy")
	if _, ok := out["Content-Type"]; !ok {
		out["Content-Type"] = nil // Envoy does not sniff a content type; net/http would
	}
	s.w.WriteHeader(status)
	s.respState = respSent
	s.info.ResponseCode = status
	s.flush()
}

func statusOf(h *headerMap) string {
	v, _ := h.get(":status")
	return v
}

// writeBody sends data and flushes at once: Envoy forwards each data frame as it comes,
// which is what an SSE client needs.
func (s *stream) writeBody(data []byte) {
	if len(data) == 0 || s.ended || s.head {
		return
	}
	if _, err := s.w.Write(data); err != nil {
		s.log.Debug("write to client failed", "error", err)
		s.ended = true
		return
	}
	s.flush()
}

func (s *stream) flush() {
	if err := s.rc.Flush(); err != nil {
		s.log.Debug("flush to client failed", "error", err)
	}
}

// endResponse marks the response complete.
func (s *stream) endResponse() {
	s.ended = true
}
