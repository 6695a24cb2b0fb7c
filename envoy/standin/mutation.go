package standin

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Limits of Envoy's HTTP connection manager that header mutations are checked against
// (common_http_protocol_options.max_headers_count and max_request_headers_kb defaults).
const (
	maxHeadersCount = 100
	maxHeadersBytes = 60 * 1024
)

type checkOp int

const (
	opSet checkOp = iota
	opAppend
	opRemove
)

type checkResult int

const (
	checkOK checkResult = iota
	checkIgnore
	checkFail
)

// mutationRules is ext_proc's mutation_rules checker.
//
// Envoy: source/extensions/filters/common/mutation_rules/mutation_rules.cc Checker.
type mutationRules struct {
	allowAllRouting, allowEnvoy, disallowSystem, disallowAll, disallowIsError bool
	allowExpr, disallowExpr                                                   *regexp.Regexp
}

func newMutationRules(r *mutationrulesv3.HeaderMutationRules) (*mutationRules, error) {
	m := &mutationRules{
		allowAllRouting: r.GetAllowAllRouting().GetValue(),
		allowEnvoy:      r.GetAllowEnvoy().GetValue(),
		disallowSystem:  r.GetDisallowSystem().GetValue(),
		disallowAll:     r.GetDisallowAll().GetValue(),
		disallowIsError: r.GetDisallowIsError().GetValue(),
	}
	var err error
	if e := r.GetAllowExpression(); e != nil {
		// Envoy's regex engine is RE2, which Go's regexp implements; Envoy matches the
		// whole name.
		if m.allowExpr, err = regexp.Compile("^(?:" + e.GetRegex() + ")$"); err != nil {
			return nil, fmt.Errorf("allow_expression: %w", err)
		}
	}
	if e := r.GetDisallowExpression(); e != nil {
		if m.disallowExpr, err = regexp.Compile("^(?:" + e.GetRegex() + ")$"); err != nil {
			return nil, fmt.Errorf("disallow_expression: %w", err)
		}
	}
	return m, nil
}

// routingHeaders may not be changed unless allow_all_routing (Checker's
// ExtraRoutingHeaders: host, :authority, :method, :scheme; :path is allowed).
var routingHeaders = map[string]bool{"host": true, ":authority": true, ":method": true, ":scheme": true}

func (m *mutationRules) check(op checkOp, name, value string) checkResult {
	if m.isAllowed(op, name) && (op == opRemove || isValidMutationValue(name, value)) {
		return checkOK
	}
	if m.disallowIsError {
		return checkFail
	}
	return checkIgnore
}

func (m *mutationRules) isAllowed(op checkOp, name string) bool {
	if op == opRemove && (strings.HasPrefix(name, ":") || name == "host") {
		// No matter what, "host" and ":" headers cannot be removed.
		return false
	}
	if m.disallowExpr != nil && m.disallowExpr.MatchString(name) {
		return false
	}
	if m.allowExpr != nil && m.allowExpr.MatchString(name) {
		return true
	}
	if m.disallowAll {
		return false
	}
	if !m.allowAllRouting && routingHeaders[name] {
		return false
	}
	if strings.HasPrefix(name, ":") && (op == opAppend || m.disallowSystem) {
		return false
	}
	if !m.allowEnvoy && strings.HasPrefix(name, "x-envoy") {
		return false
	}
	return true
}

// isValidMutationValue is Checker::isValidValue.
func isValidMutationValue(name, value string) bool {
	if !strings.HasPrefix(name, ":") && !headerValueIsValid(value) {
		return false
	}
	switch name {
	case "host", ":authority":
		return value != "" && headerValueIsValid(value) && !strings.ContainsAny(value, " /?#@")
	case ":scheme":
		return value == "http" || value == "https"
	case ":status":
		n, err := strconv.ParseUint(value, 10, 32)
		return err == nil && n >= 200
	}
	return true
}

// errMutation is a header mutation that fails the whole reply: Envoy then sends a local
// reply with status_on_error, the message as details.
type errMutation struct{ msg string }

func (e *errMutation) Error() string { return e.msg }

// applyHeaderMutation applies m to h as Envoy does: removals first, then sets. Only the
// deprecated append BoolValue is honoured (default false: overwrite); append_action is
// ignored; values come from raw_value only. Refused mutations are skipped and counted in
// rejected, unless the rules say disallow_is_error. replacing is true in a
// CONTINUE_AND_REPLACE reply, where :method may change. skipContentLength drops sets of
// content-length in body modes where Envoy removes it.
//
// Envoy: source/extensions/filters/http/ext_proc/mutation_utils.cc applyHeaderMutations
// (@4519ef4); docs/envoy.md section 1.6.
func applyHeaderMutation(m *extprocsvc.HeaderMutation, h *headerMap, replacing bool, rules *mutationRules, rejected func(), skipContentLength bool) error {
	if len(m.GetRemoveHeaders()) > maxHeadersCount || len(m.GetSetHeaders()) > maxHeadersCount {
		rejected()
		return &errMutation{fmt.Sprintf("Header mutation remove header count %d or set header count %d exceed the HCM header countlimit %d",
			len(m.GetRemoveHeaders()), len(m.GetSetHeaders()), maxHeadersCount)}
	}
	for _, name := range m.GetRemoveHeaders() {
		if !headerNameIsValid(name) {
			rejected()
			return &errMutation{"Invalid character in remove_headers mutation."}
		}
		name = strings.ToLower(name)
		switch rules.check(opRemove, name, "") {
		case checkOK:
			h.remove(name)
		case checkIgnore:
			rejected()
		case checkFail:
			rejected()
			return &errMutation{"Invalid attempt to remove " + name}
		}
	}
	for _, sh := range m.GetSetHeaders() {
		hv := sh.GetHeader()
		if hv == nil {
			continue
		}
		if skipContentLength && strings.EqualFold(hv.GetKey(), "content-length") {
			continue
		}
		if hv.GetValue() != "" && len(hv.GetRawValue()) > 0 {
			rejected()
			return &errMutation{"Only one of value or raw_value in the HeaderValue message should be set."}
		}
		value := string(hv.GetRawValue())
		if !headerNameIsValid(hv.GetKey()) || !headerValueIsValid(value) {
			rejected()
			return &errMutation{"Invalid character in set_headers mutation."}
		}
		name := strings.ToLower(hv.GetKey())
		//lint:ignore SA1019 Envoy's ext_proc reads only the deprecated append flag (mutation_utils.cc).
		appendMode := sh.GetAppend().GetValue()
		op := opSet
		if appendMode && h.has(name) {
			op = opAppend
		}
		res := rules.check(op, name, value)
		if replacing && name == ":method" {
			res = checkOK
		}
		switch res {
		case checkOK:
			if appendMode {
				h.add(name, value)
			} else {
				h.set(name, value)
			}
		case checkIgnore:
			rejected()
		case checkFail:
			rejected()
			return &errMutation{"Invalid attempt to modify " + name}
		}
	}
	if h.byteSize() > maxHeadersBytes || len(h.entries) > maxHeadersCount {
		rejected()
		return &errMutation{fmt.Sprintf("Header mutation causes end result header count %d or header size %d bytes, exceeding the count limit %d or the size limit %d kilobytes",
			len(h.entries), h.byteSize(), maxHeadersCount, maxHeadersBytes/1024)}
	}
	return nil
}

// applyBodyMutation returns body after m: body replaces it, clear_body empties it, anything
// else (including streamed_response, handled by the caller) leaves it.
//
// Envoy: mutation_utils.cc applyBodyMutations.
func applyBodyMutation(m *extprocsvc.BodyMutation, body []byte) []byte {
	switch mm := m.GetMutation().(type) {
	case *extprocsvc.BodyMutation_Body:
		return mm.Body
	case *extprocsvc.BodyMutation_ClearBody:
		if mm.ClearBody {
			return nil
		}
	}
	return body
}
