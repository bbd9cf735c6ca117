package s2sidecar

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

func TestBackoffDoublesToTheCapPlusJitter(t *testing.T) {
	p := DefaultRetryPolicy
	ms := time.Millisecond
	for attempt, want := range map[int]time.Duration{1: 100 * ms, 2: 200 * ms, 3: 400 * ms, 4: 800 * ms, 5: time.Second, 6: time.Second, 1000: time.Second} {
		if got := p.backoff(attempt, 0); got != want {
			t.Errorf("backoff(%d, 0) = %v, want %v", attempt, got, want)
		}
		if got := p.backoff(attempt, 0.5); got != want*3/2 {
			t.Errorf("backoff(%d, 0.5) = %v, want %v", attempt, got, want*3/2)
		}
	}
}

func TestRetryPolicyZeroFieldsTakeDefaults(t *testing.T) {
	if got := (RetryPolicy{}).withDefaults(); got != DefaultRetryPolicy {
		t.Errorf("zero policy = %+v, want %+v", got, DefaultRetryPolicy)
	}
	if got := (RetryPolicy{MinBackoff: 3 * time.Second}).withDefaults().MaxBackoff; got != 3*time.Second {
		t.Errorf("MaxBackoff below MinBackoff: %v", got)
	}
}

func TestRetryableFollowsTheTable(t *testing.T) {
	delay := 2 * time.Second
	cases := []struct {
		err  Error
		want bool
	}{
		{Error{Code: codes.Unavailable, Message: "draining"}, true},
		{Error{Code: codes.Unavailable, Message: "cannot connect", Attempts: 11}, false},
		{Error{Code: codes.ResourceExhausted, RetryAfter: &delay, Attempts: 11}, false},
		{Error{Code: codes.ResourceExhausted, RetryAfter: &delay}, true},
		{Error{Code: codes.ResourceExhausted}, false},
		{Error{Code: codes.Aborted, RetryAfter: &delay}, true},
		{Error{Code: codes.Aborted}, false},
		{Error{Code: codes.Internal, Message: "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"}, true},
		{Error{Code: codes.Unknown, Message: "Stream removed"}, true},
		{Error{Code: codes.Internal, Message: "read tcp: connection reset by peer"}, true},
		{Error{Code: codes.Internal, Message: "bug"}, false},
		{Error{Code: codes.NotFound}, false},
		{Error{Code: codes.InvalidArgument}, false},
		{Error{Code: codes.OutOfRange}, false},
		{Error{Code: codes.PermissionDenied}, false},
		{Error{Code: codes.Unauthenticated}, false},
		{Error{Code: codes.FailedPrecondition}, false},
		{Error{Code: codes.Canceled}, false},
		{Error{Code: codes.DeadlineExceeded}, false},
	}
	for _, c := range cases {
		if got := retryable(&c.err); got != c.want {
			t.Errorf("retryable(%v %q) = %v, want %v", c.err.Code, c.err.Message, got, c.want)
		}
	}
}

func TestAttemptsBudgetRetryInfoAndDeadline(t *testing.T) {
	unavailable := &Error{Code: codes.Unavailable}
	now := time.Unix(1000, 0)

	a := newAttempts(RetryPolicy{MaxAttempts: 3}, func() float64 { return 0 })
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
		if d, ok := a.retryDelay(unavailable, now, time.Time{}); !ok || d != want {
			t.Fatalf("failure %d: (%v, %v), want (%v, true)", i+1, d, ok, want)
		}
	}
	if _, ok := a.retryDelay(unavailable, now, time.Time{}); ok {
		t.Fatal("the third failure in a row spends a budget of 3 attempts")
	}
	a.progress()
	if d, ok := a.retryDelay(unavailable, now, time.Time{}); !ok || d != 100*time.Millisecond {
		t.Fatalf("after progress: (%v, %v), want a fresh budget", d, ok)
	}

	long := 5 * time.Second
	a = newAttempts(DefaultRetryPolicy, func() float64 { return 0 })
	if d, _ := a.retryDelay(&Error{Code: codes.Unavailable, RetryAfter: &long}, now, time.Time{}); d != long {
		t.Errorf("a RetryInfo longer than the backoff wins: got %v", d)
	}
	short := time.Millisecond
	if d, _ := a.retryDelay(&Error{Code: codes.Unavailable, RetryAfter: &short}, now, time.Time{}); d != 200*time.Millisecond {
		t.Errorf("a RetryInfo shorter than the backoff loses: got %v", d)
	}

	a = newAttempts(DefaultRetryPolicy, func() float64 { return 0 })
	if _, ok := a.retryDelay(unavailable, now, now.Add(100*time.Millisecond)); ok {
		t.Error("no retry when the delay reaches the deadline")
	}
	if _, ok := newAttempts(DefaultRetryPolicy, nil).retryDelay(&Error{Code: codes.NotFound}, now, time.Time{}); ok {
		t.Error("NOT_FOUND is never retried")
	}
}

func TestMeteredBytes(t *testing.T) {
	r := &pb.SequencedRecord{
		Headers: []*pb.Header{{Name: []byte("key"), Value: []byte("value")}, {Name: []byte(""), Value: []byte("fence")}},
		Body:    []byte("hello"),
	}
	if got, want := MeteredBytes(r), uint64(8+2*2+3+5+0+5+5); got != want {
		t.Errorf("MeteredBytes = %d, want %d", got, want)
	}
	if got := MeteredBytes(&pb.SequencedRecord{}); got != 8 {
		t.Errorf("an empty record meters 8 bytes, got %d", got)
	}
}

// rec is record seq with body "r<seq>" and one header k=v: 8 + 2 + 2 + len(body) metered bytes.
func rec(seq uint64) *pb.SequencedRecord {
	return &pb.SequencedRecord{SeqNum: seq, Timestamp: 1000 + seq, Headers: []*pb.Header{{Name: []byte("k"), Value: []byte("v")}}, Body: fmt.Appendf(nil, "r%d", seq)}
}

func batch(seqs ...uint64) *pb.ReadSessionResponse {
	b := &pb.ReadSessionResponse{}
	for _, s := range seqs {
		b.Records = append(b.Records, rec(s))
	}
	return b
}

func heartbeat(tail uint64) *pb.ReadSessionResponse {
	return &pb.ReadSessionResponse{Tail: &pb.StreamPosition{SeqNum: tail, Timestamp: 99}, CaughtUp: true}
}

func TestSessionRequestContinuesWithWhatIsLeft(t *testing.T) {
	original := &pb.ReadSessionRequest{
		Basin: "b", Stream: "s", Start: &pb.ReadSessionRequest_Timestamp{Timestamp: 5},
		Count: proto.Uint64(10), Bytes: proto.Uint64(1000), Until: proto.Uint64(2000), Clamp: true, Wait: proto.Uint32(3),
	}
	s := newSessionState(original, DefaultRetryPolicy, nil)
	if req, ok := s.request(); !ok || !proto.Equal(req, original) {
		t.Fatalf("before any batch: %v, want the original request", req)
	}
	s.onBatch(batch(7, 8, 9)) // 3 records of 14 bytes
	req, ok := s.request()
	want := &pb.ReadSessionRequest{
		Basin: "b", Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 10},
		Count: proto.Uint64(7), Bytes: proto.Uint64(1000 - 3*14), Until: proto.Uint64(2000), Clamp: true, Wait: proto.Uint32(3),
	}
	if !ok || !proto.Equal(req, want) {
		t.Fatalf("after 3 records: %v, want %v", req, want)
	}
	if original.GetTimestamp() != 5 || original.GetCount() != 10 {
		t.Fatalf("the original request was changed: %v", original)
	}
	s.onBatch(heartbeat(12)) // caught up at 12 (records 10 and 11 were trimmed)
	if req, _ := s.request(); req.GetSeqNum() != 12 || req.GetCount() != 7 {
		t.Fatalf("after a heartbeat: %v, want seq_num 12 and count 7", req)
	}
	s.onBatch(batch(12, 13, 14, 15, 16, 17, 18))
	if req, ok := s.request(); ok {
		t.Fatalf("count used up: the session has ended, got %v", req)
	}
}

func TestSessionRequestEndsWhenBytesAreUsedUp(t *testing.T) {
	s := newSessionState(&pb.ReadSessionRequest{Bytes: proto.Uint64(28)}, DefaultRetryPolicy, nil)
	s.onBatch(batch(0))
	if req, ok := s.request(); !ok || req.GetBytes() != 14 || req.GetSeqNum() != 1 {
		t.Fatalf("after one record: %v, %v", req, ok)
	}
	s.onBatch(batch(1))
	if _, ok := s.request(); ok {
		t.Fatal("bytes used up: the session has ended")
	}
}

func TestSessionErrorCarriesTheClientsPosition(t *testing.T) {
	next := uint64(3) // the server's s2-next-seq-num, behind the client's own position
	s := newSessionState(&pb.ReadSessionRequest{Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 4}}, DefaultRetryPolicy, nil)
	e := &Error{Code: codes.Unavailable, NextSeqNum: &next}
	s.onError(e)
	if *e.NextSeqNum != 4 {
		t.Errorf("before any batch: NextSeqNum %d, want the start 4", *e.NextSeqNum)
	}
	s.onBatch(batch(4, 5))
	s.onError(e)
	if *e.NextSeqNum != 6 {
		t.Errorf("after records 4 and 5: NextSeqNum %d, want 6", *e.NextSeqNum)
	}

	s = newSessionState(&pb.ReadSessionRequest{Start: &pb.ReadSessionRequest_TailOffset{TailOffset: 2}}, DefaultRetryPolicy, nil)
	e = &Error{Code: codes.Unavailable, NextSeqNum: &next}
	s.onError(e)
	if *e.NextSeqNum != 3 {
		t.Errorf("no position of its own: the server's s2-next-seq-num stays, got %d", *e.NextSeqNum)
	}
}

func TestAttemptsComeFromErrorInfoMetadata(t *testing.T) {
	err := statusErr(t, codes.Unavailable, "cannot connect",
		&errdetails.ErrorInfo{Reason: "upstream_unreachable", Domain: "s2.dev", Metadata: map[string]string{"attempts": "11"}})
	if e := newError(err, nil); e.Attempts != 11 || retryable(e) {
		t.Fatalf("Attempts = %d, retryable = %v; want 11, false", e.Attempts, retryable(e))
	}
	if e := newError(statusErr(t, codes.Unavailable, "draining"), nil); e.Attempts != 0 || !retryable(e) {
		t.Fatalf("Attempts = %d, retryable = %v; want 0, true", e.Attempts, retryable(e))
	}
}
