package standin

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// headerMutationFilter is the envoy.filters.http.header_mutation filter's request mutations,
// run as an upstream filter on every attempt.
type headerMutationFilter struct {
	ops []headerOp
}

// headerOp is one request mutation: remove a header, or add one per append_action with a
// formatted value.
type headerOp struct {
	remove    string
	key       string
	value     valueFormat
	action    corev3.HeaderValueOption_HeaderAppendAction
	keepEmpty bool
}

func parseHeaderMutation(hm *headermutationv3.HeaderMutation) (*headerMutationFilter, error) {
	var errs []error
	f := &headerMutationFilter{}
	for i, m := range hm.GetMutations().GetRequestMutations() {
		where := fmt.Sprintf("mutations.request_mutations[%d]", i)
		if r := m.GetRemove(); r != "" {
			f.ops = append(f.ops, headerOp{remove: strings.ToLower(r)})
			continue
		}
		a := m.GetAppend()
		if a == nil {
			errs = append(errs, fmt.Errorf("%s: remove or append is required", where))
			continue
		}
		vf, err := parseValueFormat(a.GetHeader().GetValue())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.append.header.value: %w", where, err))
		}
		f.ops = append(f.ops, headerOp{
			key:       strings.ToLower(a.GetHeader().GetKey()),
			value:     vf,
			action:    a.GetAppendAction(),
			keepEmpty: a.GetKeepEmptyValue(),
		})
	}
	return f, errors.Join(errs...)
}

// apply runs the request mutations on h (the router's header map, shared by all attempts),
// formatting values from the request's dynamic metadata. An empty formatted value is not
// written unless keep_empty_value; append_action says how a value is written.
//
// Envoy: source/extensions/filters/http/header_mutation/header_mutation.cc
// AppendMutation::mutate (empty value skipped unless add_if_empty_); the value is a
// substitution format whose missing values format as empty (header_parser.cc
// HeadersToAddEntry).
func (f *headerMutationFilter) apply(h *headerMap, md *dynamicMetadata) {
	for _, op := range f.ops {
		if op.remove != "" {
			h.remove(op.remove)
			continue
		}
		v := op.value.format(md)
		if (v == "" && !op.keepEmpty) || !headerValueIsValid(v) {
			continue
		}
		switch op.action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.add(op.key, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !h.has(op.key) {
				h.add(op.key, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.set(op.key, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if h.has(op.key) {
				h.set(op.key, v)
			}
		}
	}
}

// valueFormat is a header value in Envoy's substitution format, restricted to literal text and
// %DYNAMIC_METADATA(namespace:key[:key...])%.
type valueFormat []valuePart

type valuePart struct {
	literal string
	ns      string
	path    []string // non-nil: a DYNAMIC_METADATA command
}

var commandRE = regexp.MustCompile(`%([A-Z_]+)(\(([^)]*)\))?(:[0-9]+)?%`)

func parseValueFormat(s string) (valueFormat, error) {
	var out valueFormat
	rest := s
	for {
		loc := commandRE.FindStringSubmatchIndex(rest)
		if loc == nil {
			if strings.Contains(rest, "%") {
				return nil, fmt.Errorf("%q: only literal text and %%DYNAMIC_METADATA(ns:key)%% are implemented by the stand-in", s)
			}
			if rest != "" {
				out = append(out, valuePart{literal: rest})
			}
			return out, nil
		}
		if loc[0] > 0 {
			if strings.Contains(rest[:loc[0]], "%") {
				return nil, fmt.Errorf("%q: stray %% outside a command", s)
			}
			out = append(out, valuePart{literal: rest[:loc[0]]})
		}
		cmd := rest[loc[2]:loc[3]]
		if cmd != "DYNAMIC_METADATA" || loc[6] < 0 || loc[8] >= 0 {
			return nil, fmt.Errorf("%q: command %%%s%% is not implemented by the stand-in (only %%DYNAMIC_METADATA(ns:key)%% without a length)", s, cmd)
		}
		parts := strings.Split(rest[loc[6]:loc[7]], ":")
		if len(parts) < 2 || parts[0] == "" {
			return nil, fmt.Errorf("%q: %%DYNAMIC_METADATA%% needs namespace:key", s)
		}
		out = append(out, valuePart{ns: parts[0], path: parts[1:]})
		rest = rest[loc[1]:]
	}
}

func (vf valueFormat) format(md *dynamicMetadata) string {
	var b strings.Builder
	for _, p := range vf {
		if p.path == nil {
			b.WriteString(p.literal)
			continue
		}
		b.WriteString(formatMetadata(md, p.ns, p.path))
	}
	return b.String()
}

// formatMetadata is the DYNAMIC_METADATA formatter: a string as is, anything else as JSON
// (numbers without a fraction print as integers, as protobuf's JSON printer does); missing
// is empty.
//
// Envoy: source/common/formatter/stream_info_formatter.cc MetadataFormatter::formatMetadata.
func formatMetadata(md *dynamicMetadata, ns string, path []string) string {
	s, ok := md.ns[ns]
	if !ok {
		return ""
	}
	v := structpb.NewStructValue(s)
	for _, k := range path {
		f, ok := v.GetStructValue().GetFields()[k]
		if !ok {
			return ""
		}
		v = f
	}
	switch x := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return x.StringValue
	case *structpb.Value_NumberValue:
		if x.NumberValue == math.Trunc(x.NumberValue) && math.Abs(x.NumberValue) < 1<<53 {
			return strconv.FormatInt(int64(x.NumberValue), 10)
		}
		return strconv.FormatFloat(x.NumberValue, 'g', -1, 64)
	case *structpb.Value_NullValue, nil:
		return ""
	}
	j, err := protojson.Marshal(v)
	if err != nil {
		return ""
	}
	return string(j)
}
