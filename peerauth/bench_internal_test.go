package peerauth

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type benchStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s benchStream) Context() context.Context { return s.ctx }

// BenchmarkStreamCheck is the guard's cost per ext_proc stream (one per request and filter):
// the metadata lookup, the constant-time digest comparison and the identity in the context.
func BenchmarkStreamCheck(b *testing.B) {
	secret := strings.Repeat("ab", 32)
	info := &grpc.StreamServerInfo{FullMethod: "/envoy.service.ext_proc.v3.ExternalProcessor/Process"}
	handler := func(any, grpc.ServerStream) error { return nil }
	for _, tc := range []struct {
		name   string
		secret string
	}{{"local", ""}, {"secret", secret}} {
		g := New([]byte(tc.secret), nil)
		ss := benchStream{ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs(MetadataKey, secret))}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := g.stream(nil, ss, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
