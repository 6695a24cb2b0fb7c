package extproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// grpcOverhead is room for the ext_proc envelope around a maximal body.
const grpcOverhead = 1 << 20

// ShutdownGrace bounds how long Serve waits for in-flight streams and settlements.
const ShutdownGrace = 30 * time.Second

// Serve serves the ext_proc service on lis until ctx is done, then stops accepting streams, lets
// in-flight ones finish and waits for their settlements, within ShutdownGrace. opts are added to
// the gRPC server's, e.g. peerauth's interceptors, which authenticate Envoy on every stream.
func (s *Server) Serve(ctx context.Context, lis net.Listener, opts ...grpc.ServerOption) error {
	// Envoy sends the whole buffered body in one message, and a translated reply may be larger
	// than the client's body, so both directions admit twice MaxBodyBytes (grpc-go's default is
	// 4 MiB). This matches the limit the rendered bootstrap gives Envoy's side
	// (bootstrap.GRPCMaxMessageBytes).
	limit := 2*s.cfg.MaxBodyBytes + grpcOverhead
	gs := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit)}, opts...)...)
	extprocv3.RegisterExternalProcessorServer(gs, s)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("serve ext_proc: %w", err)
	case <-ctx.Done():
	}
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-graceCtx.Done():
		gs.Stop()
	}
	<-errc
	return s.Drain(graceCtx)
}
