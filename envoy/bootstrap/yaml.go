package bootstrap

import (
	"errors"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Extensions a Tollgate bootstrap may name in typed_config besides those render.go
	// builds: registering them lets Load resolve every Any.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
)

// Marshal renders b as YAML for `envoy -c`: protojson with proto field names, re-encoded by
// sigs.k8s.io/yaml, whose map keys come out sorted, so equal protos give identical bytes.
func Marshal(b *bootstrapv3.Bootstrap) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("marshal bootstrap: json to yaml: %w", err)
	}
	return y, nil
}

// Load parses a YAML bootstrap. Unknown fields are errors, every typed_config (and any other
// Any) must name a registered type, and the bootstrap and every embedded extension config
// must pass their protoc-gen-validate rules, as Envoy checks them at start-up.
func Load(data []byte) (*bootstrapv3.Bootstrap, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("load bootstrap: yaml: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(j, &b); err != nil {
		return nil, fmt.Errorf("load bootstrap: %w", err)
	}
	if err := Validate(&b); err != nil {
		return nil, fmt.Errorf("load bootstrap: %w", err)
	}
	return &b, nil
}

// Validate runs the protoc-gen-validate rules of b and of every message embedded in an Any
// (which the generated validators do not descend into).
func Validate(b *bootstrapv3.Bootstrap) error {
	if err := b.ValidateAll(); err != nil {
		return err
	}
	exts, err := TypedExtensions(b)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range exts {
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// TypedExtensions resolves every Any reachable from m, depth first, including those inside
// other resolved Anys. An Any whose type is not registered is an error naming its path.
func TypedExtensions(m proto.Message) ([]proto.Message, error) {
	var out []proto.Message
	var visit func(path string, m protoreflect.Message) error
	visit = func(path string, m protoreflect.Message) error {
		return walkAny(m, path, func(p string, a *anypb.Any) error {
			inner, err := a.UnmarshalNew()
			if err != nil {
				return fmt.Errorf("%s: typed config %q: %w", p, a.GetTypeUrl(), err)
			}
			out = append(out, inner)
			return visit(p+"("+string(inner.ProtoReflect().Descriptor().Name())+")", inner.ProtoReflect())
		})
	}
	err := visit(string(m.ProtoReflect().Descriptor().Name()), m.ProtoReflect())
	return out, err
}

// walkAny calls fn for each Any field value under m (not descending into the Anys).
func walkAny(m protoreflect.Message, path string, fn func(string, *anypb.Any) error) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		return fn(path, a)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = walkAny(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()), fn)
				return err == nil
			})
		case fd.IsList():
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walkAny(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), fn)
			}
		case fd.Kind() == protoreflect.MessageKind:
			err = walkAny(v.Message(), p, fn)
		}
		return err == nil
	})
	return err
}
