package s2sidecar

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

func caughtUpBatch(seqs ...uint64) *pb.ReadSessionResponse {
	b := batch(seqs...)
	b.CaughtUp = true
	return b
}

func TestCaughtUpIsWhatTheLastMessageSaidAndFalseAfterAResume(t *testing.T) {
	c, _ := serve(t, 0,
		script{batches: []*pb.ReadSessionResponse{batch(0), caughtUpBatch(1)}, err: statusErr(t, codes.Unavailable, "down")},
		script{batches: []*pb.ReadSessionResponse{batch(2), heartbeat(3)}},
	)
	s := c.ReadSession(context.Background(), &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 0}})
	defer s.Close()
	if s.CaughtUp() {
		t.Fatal("CaughtUp() before any message, want false")
	}
	var got []bool
	for s.Next() {
		got = append(got, s.CaughtUp())
		if s.Batch().GetCaughtUp() != s.CaughtUp() {
			t.Fatalf("the batch says %v, the session %v", s.Batch().GetCaughtUp(), s.CaughtUp())
		}
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	// 0, 1 (caught up), then the resume: 2 (behind again), the heartbeat at 3 (caught up)
	want := []bool{false, true, false, true}
	if len(got) != len(want) {
		t.Fatalf("CaughtUp() after each batch = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("CaughtUp() after each batch = %v, want %v", got, want)
		}
	}
}

func TestIgnoreCommandRecordsIsSentWithEveryResume(t *testing.T) {
	c, f := serve(t, 0,
		script{batches: []*pb.ReadSessionResponse{batch(0)}, err: statusErr(t, codes.Unavailable, "down")},
		script{batches: []*pb.ReadSessionResponse{batch(2)}},
	)
	req := &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 0}, IgnoreCommandRecords: true}
	s := c.ReadSession(context.Background(), req)
	if got := seqNums(drain(s)); len(got) != 2 || got[0] != 0 || got[1] != 2 || s.Err() != nil {
		t.Fatalf("got %v, %v", got, s.Err())
	}
	assertRequests(t, f, req, &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_SeqNum{SeqNum: 1}, IgnoreCommandRecords: true})
}

func TestIgnoreCommandRecordsWithALimitIsRefusedBeforeAnyCall(t *testing.T) {
	c, f := serve(t, 0, script{batches: []*pb.ReadSessionResponse{batch(0)}})
	for _, req := range []*pb.ReadSessionRequest{
		{Stream: "s", IgnoreCommandRecords: true, Count: proto.Uint64(3)},
		{Stream: "s", IgnoreCommandRecords: true, Bytes: proto.Uint64(100)},
	} {
		s := c.ReadSession(context.Background(), req)
		if s.Next() || !errors.Is(s.Err(), ErrIgnoreCommandRecordsWithLimit) {
			t.Fatalf("%v: Err() = %v, want ErrIgnoreCommandRecordsWithLimit", req, s.Err())
		}
	}
	if len(f.requests) != 0 {
		t.Fatalf("%d calls, want none", len(f.requests))
	}
}

func TestReadSendsIgnoreCommandRecordsWithEveryRetry(t *testing.T) {
	c, f := serve(t, 0,
		script{err: statusErr(t, codes.Unavailable, "down")},
		script{resp: &pb.ReadResponse{Records: []*pb.SequencedRecord{rec(0)}}},
	)
	req := &pb.ReadRequest{Stream: "s", IgnoreCommandRecords: true}
	if _, err := c.Read(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	assertRequests(t, f, req, req)
}
