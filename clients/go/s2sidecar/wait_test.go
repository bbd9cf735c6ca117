package s2sidecar

// An app that starts before its sidecar: the first calls wait for the connection (gRPC's
// wait-for-ready) instead of failing fast, and WaitForReady waits for it explicitly. Retries are
// off, so only the waiting can make a call succeed.

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// freeAddr is a loopback address nothing listens on (a moment ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func noRetryClient(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := New(addr, WithRetryPolicy(RetryPolicy{MaxAttempts: 1, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}), WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startLater serves f on addr after d; the channel is closed once it serves.
func startLater(t *testing.T, addr string, d time.Duration, f *fakeService) <-chan struct{} {
	t.Helper()
	up := make(chan struct{})
	timer := time.AfterFunc(d, func() {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen %s: %v", addr, err)
			close(up)
			return
		}
		srv := newFakeServer(f)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		close(up)
	})
	t.Cleanup(func() { timer.Stop() })
	return up
}

func TestTheFirstCallWaitsForASidecarThatStartsLater(t *testing.T) {
	addr := freeAddr(t)
	f := &fakeService{scripts: []script{{resp: &pb.CheckTailResponse{Tail: &pb.StreamPosition{SeqNum: 7}}}}}
	c := noRetryClient(t, addr)
	startLater(t, addr, 500*time.Millisecond, f)
	began := time.Now()
	resp, err := c.CheckTail(context.Background(), &pb.CheckTailRequest{Stream: "s"})
	if err != nil {
		t.Fatalf("CheckTail before the sidecar started: %v", err)
	}
	if resp.Tail.GetSeqNum() != 7 || time.Since(began) < 400*time.Millisecond {
		t.Fatalf("got %v after %v", resp, time.Since(began))
	}
	if !c.answered.Load() {
		t.Fatal("the client does not know the sidecar answered")
	}
}

func TestTheFirstSessionWaitsForASidecarThatStartsLater(t *testing.T) {
	addr := freeAddr(t)
	f := &fakeService{scripts: []script{{batches: []*pb.ReadSessionResponse{batch(0, 1, 2)}}}}
	c := noRetryClient(t, addr)
	startLater(t, addr, 500*time.Millisecond, f)
	s := c.ReadSession(context.Background(), &pb.ReadSessionRequest{Stream: "s", Count: proto.Uint64(3)}, WithoutResume())
	defer s.Close()
	got := drain(s)
	if s.Err() != nil {
		t.Fatalf("session before the sidecar started: %v", s.Err())
	}
	assertSeqNums(t, seqNums(got), 0, 3)
}

func TestAfterTheFirstAnswerCallsFailFast(t *testing.T) {
	f := &fakeService{scripts: []script{{resp: &pb.CheckTailResponse{}}}}
	srv := start(t, "127.0.0.1:0", f)
	c := noRetryClient(t, srv.addr)
	if _, err := c.CheckTail(context.Background(), &pb.CheckTailRequest{Stream: "s"}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	began := time.Now()
	_, err := c.CheckTail(context.Background(), &pb.CheckTailRequest{Stream: "s"})
	if !IsUnavailable(err) || time.Since(began) > 5*time.Second {
		t.Fatalf("after the sidecar went away: %v after %v; want UNAVAILABLE at once", err, time.Since(began))
	}
}

func TestWaitForReady(t *testing.T) {
	addr := freeAddr(t)
	c := noRetryClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.WaitForReady(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "s2-sidecar at "+addr+" is not ready") {
		t.Fatalf("WaitForReady with nothing listening: %v", err)
	}
	up := startLater(t, addr, 200*time.Millisecond, &fakeService{scripts: []script{{}}})
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitForReady(ctx); err != nil {
		t.Fatalf("WaitForReady once the sidecar started: %v", err)
	}
	<-up
}
