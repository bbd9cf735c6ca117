package s2sidecar

// The client's loops against a scripted StreamService: a real grpc-go server on loopback whose
// calls follow a script each (batches, then an error with details and trailers, or the end),
// and which records every request it gets.

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// script is what one call does: send batches (sessions) or resp (unary calls), then fail with
// err and trailer, or end normally when err is nil.
type script struct {
	batches []*pb.ReadSessionResponse
	resp    proto.Message
	err     error
	trailer metadata.MD
	hang    bool // after the batches, wait until the call is cancelled or the server stops
}

type fakeService struct {
	pb.UnimplementedStreamServiceServer
	mu       sync.Mutex
	scripts  []script // one per call, in order; the last one repeats
	requests []proto.Message
	keys     [][]string // each call's s2-encryption-key metadata
}

func (f *fakeService) next(ctx context.Context, req proto.Message) script {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, proto.Clone(req))
	md, _ := metadata.FromIncomingContext(ctx)
	f.keys = append(f.keys, md.Get(EncryptionKeyHeader))
	return f.scripts[min(len(f.requests), len(f.scripts))-1]
}

func (f *fakeService) ReadSession(req *pb.ReadSessionRequest, stream grpc.ServerStreamingServer[pb.ReadSessionResponse]) error {
	s := f.next(stream.Context(), req)
	for _, b := range s.batches {
		if err := stream.Send(b); err != nil {
			return err
		}
	}
	if s.hang {
		<-stream.Context().Done()
	}
	stream.SetTrailer(s.trailer)
	return s.err
}

func (f *fakeService) Read(ctx context.Context, req *pb.ReadRequest) (*pb.ReadResponse, error) {
	s := f.next(ctx, req)
	_ = grpc.SetTrailer(ctx, s.trailer)
	if s.err != nil {
		return nil, s.err
	}
	return s.resp.(*pb.ReadResponse), nil
}

func (f *fakeService) CheckTail(ctx context.Context, req *pb.CheckTailRequest) (*pb.CheckTailResponse, error) {
	s := f.next(ctx, req)
	_ = grpc.SetTrailer(ctx, s.trailer)
	if s.err != nil {
		return nil, s.err
	}
	return s.resp.(*pb.CheckTailResponse), nil
}

type server struct {
	*grpc.Server
	addr string
}

// start serves f on addr (port 0: any free one) until the test ends.
func start(t *testing.T, addr string, f *fakeService) server {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := newFakeServer(f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return server{srv, lis.Addr().String()}
}

func newFakeServer(f *fakeService) *grpc.Server {
	srv := grpc.NewServer()
	pb.RegisterStreamServiceServer(srv, f)
	return srv
}

// serve starts the fake on a loopback port and returns a client for it with a tiny backoff
// (1-2 ms, no jitter) and the given budget.
func serve(t *testing.T, maxAttempts int, scripts ...script) (*Client, *fakeService) {
	t.Helper()
	f := &fakeService{scripts: scripts}
	srv := start(t, "127.0.0.1:0", f)
	c, err := New(srv.addr, WithRetryPolicy(RetryPolicy{MaxAttempts: maxAttempts, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.jitter = func() float64 { return 0 }
	return c, f
}

func statusErr(t *testing.T, code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	t.Helper()
	st := status.New(code, msg)
	if len(details) > 0 {
		var err error
		if st, err = st.WithDetails(details...); err != nil {
			t.Fatal(err)
		}
	}
	return st.Err()
}

// draining is a SIGTERM'd sidecar's goodbye: UNAVAILABLE, RetryInfo, and where to resume.
func draining(t *testing.T, next uint64) (error, metadata.MD) {
	err := statusErr(t, codes.Unavailable, "the sidecar is shutting down", &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
	return err, metadata.Pairs("s2-next-seq-num", strconv.FormatUint(next, 10))
}

// drain reads the whole session, returning its batches.
func drain(s *Session) []*pb.ReadSessionResponse {
	var got []*pb.ReadSessionResponse
	for s.Next() {
		got = append(got, s.Batch())
	}
	return got
}

func seqNums(batches []*pb.ReadSessionResponse) []uint64 {
	var seqs []uint64
	for _, b := range batches {
		for _, r := range b.Records {
			seqs = append(seqs, r.SeqNum)
		}
	}
	return seqs
}

func assertRequests(t *testing.T, f *fakeService, want ...proto.Message) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != len(want) {
		t.Fatalf("%d requests, want %d: %v", len(f.requests), len(want), f.requests)
	}
	for i := range want {
		if !proto.Equal(f.requests[i], want[i]) {
			t.Errorf("request %d = {%v}, want {%v}", i+1, f.requests[i], want[i])
		}
	}
}

func assertSeqNums(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	ok := uint64(len(got)) == to-from
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == from+uint64(i)
	}
	if !ok {
		t.Fatalf("records %v, want %d..%d once each, in order", got, from, to-1)
	}
}

func TestSessionResumesAfterTheSidecarDrains(t *testing.T) {
	err, trailer := draining(t, 5)
	c, f := serve(t, 0,
		script{batches: []*pb.ReadSessionResponse{batch(0, 1, 2), batch(3, 4)}, err: err, trailer: trailer},
		script{batches: []*pb.ReadSessionResponse{batch(5, 6, 7), batch(8, 9)}},
	)
	req := &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 0}, Count: proto.Uint64(10), Bytes: proto.Uint64(10_000), Wait: proto.Uint32(5)}
	s := c.ReadSession(context.Background(), req)
	got := drain(s)
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil at the session's stop", err)
	}
	assertSeqNums(t, seqNums(got), 0, 10)
	assertRequests(t, f, req, &pb.ReadSessionRequest{
		Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 5}, Count: proto.Uint64(5), Bytes: proto.Uint64(10_000 - 5*14), Wait: proto.Uint32(5),
	})
}

func TestSessionResumesAtTheLastHeartbeatsTail(t *testing.T) {
	c, f := serve(t, 0,
		script{err: statusErr(t, codes.Unavailable, "connection refused")},
		script{batches: []*pb.ReadSessionResponse{heartbeat(7)}, err: statusErr(t, codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR")},
		script{batches: []*pb.ReadSessionResponse{batch(7), heartbeat(8), batch(8)}},
	)
	req := &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_TailOffset{TailOffset: 0}}
	s := c.ReadSession(context.Background(), req)
	got := drain(s)
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	if len(got) != 4 || len(got[0].Records) != 0 || got[0].Tail.GetSeqNum() != 7 {
		t.Fatalf("batches %v, want the heartbeat first", got)
	}
	assertSeqNums(t, seqNums(got), 7, 9)
	// nothing delivered and no heartbeat: the original again; after the heartbeat: its tail
	assertRequests(t, f, req, req, &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 7}})
}

func TestSessionResumesOnANewServerAfterTheConnectionBreaks(t *testing.T) {
	f := &fakeService{scripts: []script{{batches: []*pb.ReadSessionResponse{batch(0, 1, 2)}, hang: true}}}
	first := start(t, "127.0.0.1:0", f)
	c, err := New(first.addr, WithRetryPolicy(RetryPolicy{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 0}, Count: proto.Uint64(5)}
	s := c.ReadSession(context.Background(), req)
	if !s.Next() {
		t.Fatalf("no first batch: %v", s.Err())
	}
	got := []*pb.ReadSessionResponse{s.Batch()}
	first.Stop() // closes the connection mid-session, like a SIGKILL'd sidecar
	f.mu.Lock()
	f.scripts = append(f.scripts, script{batches: []*pb.ReadSessionResponse{batch(3, 4)}})
	f.mu.Unlock()
	start(t, first.addr, f) // the sidecar is back on the same port
	got = append(got, drain(s)...)
	if s.Err() != nil {
		t.Fatalf("Err() = %v", s.Err())
	}
	assertSeqNums(t, seqNums(got), 0, 5)
	// attempts while no server listened were refused before reaching one: never recorded
	assertRequests(t, f, req, &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 3}, Count: proto.Uint64(2)})
}

func TestSessionFailsAtOnceOnNotFound(t *testing.T) {
	c, f := serve(t, 0, script{err: statusErr(t, codes.NotFound, "stream not found",
		&errdetails.ErrorInfo{Reason: "stream_not_found", Domain: "s2.dev"})})
	req := &pb.ReadSessionRequest{Stream: "missing", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 0}}
	s := c.ReadSession(context.Background(), req)
	if got := drain(s); len(got) != 0 {
		t.Fatalf("batches from a missing stream: %v", got)
	}
	var e *Error
	if !errors.As(s.Err(), &e) || !IsNotFound(s.Err()) || e.Reason != "stream_not_found" || e.Domain != "s2.dev" {
		t.Fatalf("Err() = %#v, want NOT_FOUND with reason stream_not_found", s.Err())
	}
	if status.Code(s.Err()) != codes.NotFound {
		t.Errorf("status.Code(Err()) = %v", status.Code(s.Err()))
	}
	assertRequests(t, f, req)
}

func TestSessionGivesUpWhenTheBudgetIsSpent(t *testing.T) {
	err, trailer := draining(t, 7)
	c, f := serve(t, 3,
		script{batches: []*pb.ReadSessionResponse{batch(5, 6)}, err: err, trailer: trailer},
		script{err: statusErr(t, codes.Unavailable, "connection refused")},
	)
	req := &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 5}}
	s := c.ReadSession(context.Background(), req)
	assertSeqNums(t, seqNums(drain(s)), 5, 7)
	var e *Error
	if !errors.As(s.Err(), &e) || e.Code != codes.Unavailable || e.Message != "connection refused" {
		t.Fatalf("Err() = %v, want the last UNAVAILABLE", s.Err())
	}
	if e.NextSeqNum == nil || *e.NextSeqNum != 7 {
		t.Fatalf("NextSeqNum = %v, want 7", e.NextSeqNum)
	}
	// the batch was progress: three attempts in a row without any after it
	resume := &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 7}}
	assertRequests(t, f, req, resume, resume)
}

func TestSessionWithoutResumeFailsAtTheFirstError(t *testing.T) {
	err, trailer := draining(t, 2)
	c, f := serve(t, 0, script{batches: []*pb.ReadSessionResponse{batch(0, 1)}, err: err, trailer: trailer})
	req := &pb.ReadSessionRequest{Stream: "s"}
	s := c.ReadSession(context.Background(), req, WithoutResume())
	assertSeqNums(t, seqNums(drain(s)), 0, 2)
	var e *Error
	if !errors.As(s.Err(), &e) || !IsUnavailable(e) || e.NextSeqNum == nil || *e.NextSeqNum != 2 || e.RetryAfter == nil {
		t.Fatalf("Err() = %#v, want UNAVAILABLE with RetryInfo and next_seq_num 2", s.Err())
	}
	assertRequests(t, f, req)
}

func TestSessionEndsWhenTheCountWasDeliveredBeforeAFailure(t *testing.T) {
	err, trailer := draining(t, 3)
	c, f := serve(t, 0, script{batches: []*pb.ReadSessionResponse{batch(0, 1, 2)}, err: err, trailer: trailer})
	req := &pb.ReadSessionRequest{Stream: "s", Count: proto.Uint64(3)}
	s := c.ReadSession(context.Background(), req)
	assertSeqNums(t, seqNums(drain(s)), 0, 3)
	if s.Err() != nil {
		t.Fatalf("Err() = %v, want nil: every record asked for was delivered", s.Err())
	}
	assertRequests(t, f, req)
}

func TestSessionCloseAndContext(t *testing.T) {
	c, _ := serve(t, 0, script{batches: []*pb.ReadSessionResponse{batch(0), heartbeat(1)}, err: statusErr(t, codes.Unavailable, "down")})
	s := c.ReadSession(context.Background(), &pb.ReadSessionRequest{Stream: "s"})
	if !s.Next() {
		t.Fatalf("no first batch: %v", s.Err())
	}
	s.Close()
	if s.Next() || s.Err() != nil {
		t.Fatalf("after Close: Next must be false and Err nil, got %v", s.Err())
	}

	ctx, cancel := context.WithCancel(context.Background())
	s = c.ReadSession(ctx, &pb.ReadSessionRequest{Stream: "s"})
	cancel()
	if s.Next() || !errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("a cancelled context ends the session with its error, got %v", s.Err())
	}
}

func TestReadRetriesUnavailableThenSucceeds(t *testing.T) {
	want := &pb.ReadResponse{Records: []*pb.SequencedRecord{rec(0), rec(1)}}
	c, f := serve(t, 0,
		script{err: statusErr(t, codes.Unavailable, "connection refused")},
		script{err: statusErr(t, codes.Unknown, "Stream removed")},
		script{resp: want},
	)
	req := &pb.ReadRequest{Stream: "s", Start: &pb.ReadRequest_SeqNum{SeqNum: 0}}
	got, err := c.Read(context.Background(), req)
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("Read = %v, %v", got, err)
	}
	assertRequests(t, f, req, req, req)
}

func TestReadTypedErrorsAreNotRetried(t *testing.T) {
	c, f := serve(t, 0, script{
		err:     statusErr(t, codes.OutOfRange, "seq_num 9 is past the tail 3"),
		trailer: metadata.Pairs("s2-tail-seq-num", "3", "s2-tail-timestamp", "1700000002000"),
	})
	req := &pb.ReadRequest{Stream: "s", Start: &pb.ReadRequest_SeqNum{SeqNum: 9}}
	_, err := c.Read(context.Background(), req)
	var e *Error
	if !errors.As(err, &e) || !IsOutOfRange(err) || e.TailSeqNum == nil || *e.TailSeqNum != 3 || *e.TailTimestamp != 1700000002000 {
		t.Fatalf("Read error = %#v, want OUT_OF_RANGE with the tail", err)
	}
	assertRequests(t, f, req)

	c, _ = serve(t, 0, script{err: statusErr(t, codes.InvalidArgument, "bad stream name",
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "stream", Description: "not .."}}})})
	_, err = c.Read(context.Background(), &pb.ReadRequest{Stream: ".."})
	if !errors.As(err, &e) || !IsInvalidArgument(err) || e.Field != "stream" {
		t.Fatalf("Read error = %#v, want INVALID_ARGUMENT on field stream", err)
	}
}

func TestCheckTailRetriesUntilTheBudgetIsSpent(t *testing.T) {
	c, f := serve(t, 4, script{err: statusErr(t, codes.Unavailable, "connection refused")})
	req := &pb.CheckTailRequest{Stream: "s"}
	_, err := c.CheckTail(context.Background(), req)
	if !IsUnavailable(err) {
		t.Fatalf("CheckTail error = %v, want UNAVAILABLE", err)
	}
	assertRequests(t, f, req, req, req, req)
}

func TestTokenIsSentWithEveryCall(t *testing.T) {
	var got []string
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		got = append(got, md.Get("authorization")...)
		return h(ctx, req)
	}))
	pb.RegisterStreamServiceServer(srv, &fakeService{scripts: []script{{resp: &pb.CheckTailResponse{}}}})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	c, err := New(lis.Addr().String(), WithToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CheckTail(context.Background(), &pb.CheckTailRequest{Stream: "s"}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "Bearer s3cret" {
		t.Fatalf("authorization = %v", got)
	}
}

func TestDefaultTarget(t *testing.T) {
	t.Setenv("S2_SIDECAR_ADDRESS", "")
	if got := DefaultTarget(); got != "127.0.0.1:50051" {
		t.Errorf("DefaultTarget() = %q without S2_SIDECAR_ADDRESS", got)
	}
	t.Setenv("S2_SIDECAR_ADDRESS", "unix:/run/s2-sidecar.sock")
	if got := DefaultTarget(); got != "unix:/run/s2-sidecar.sock" {
		t.Errorf("DefaultTarget() = %q", got)
	}
}
