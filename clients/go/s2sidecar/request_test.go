package s2sidecar

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

func TestRequestHelpersBuildTheRawRequests(t *testing.T) {
	cases := []struct{ got, want proto.Message }{
		{NewReadRequest("s"), &pb.ReadRequest{Stream: "s"}},
		{NewReadSessionRequest("s"), &pb.ReadSessionRequest{Stream: "s"}},
		{NewCheckTailRequest("s"), &pb.CheckTailRequest{Stream: "s"}},
		{
			NewReadRequest("s", Basin("b"), SeqNum(0), Count(100), Bytes(1<<20), Until(9), Clamp(), Wait(5), IgnoreCommandRecords()),
			&pb.ReadRequest{
				Basin: "b", Stream: "s", Start: &pb.ReadRequest_SeqNum{SeqNum: 0}, Count: proto.Uint64(100),
				Bytes: proto.Uint64(1 << 20), Until: proto.Uint64(9), Clamp: true, Wait: proto.Uint32(5), IgnoreCommandRecords: true,
			},
		},
		{NewReadRequest("s", Timestamp(1700000000000)), &pb.ReadRequest{Stream: "s", Start: &pb.ReadRequest_Timestamp{Timestamp: 1700000000000}}},
		{NewReadSessionRequest("s", TailOffset(10), Wait(0)), &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_TailOffset{TailOffset: 10}, Wait: proto.Uint32(0)}},
		{NewReadSessionRequest("s", SeqNum(3), Timestamp(4)), &pb.ReadSessionRequest{Stream: "s", Start: &pb.ReadSessionRequest_Timestamp{Timestamp: 4}}}, // the last start wins
		{NewCheckTailRequest("s", Basin("b"), MaxStaleness(0)), &pb.CheckTailRequest{Basin: "b", Stream: "s", MaxStalenessMs: proto.Uint32(0)}},
		{NewCheckTailRequest("s", MaxStaleness(1500*time.Millisecond)), &pb.CheckTailRequest{Stream: "s", MaxStalenessMs: proto.Uint32(1500)}},
	}
	for i, c := range cases {
		if !proto.Equal(c.got, c.want) {
			t.Errorf("case %d: {%v}, want {%v}", i, c.got, c.want)
		}
	}
}

func TestDefaultsSendWhatTheProtoDefaultsTo(t *testing.T) {
	c, f := serve(t, 0, script{resp: &pb.ReadResponse{}}, script{}, script{resp: &pb.CheckTailResponse{Tail: &pb.StreamPosition{}}})
	if o := buildOptions(nil); o.timeout != 30*time.Second || o.retry != DefaultRetryPolicy {
		t.Errorf("default timeout %v, retry %+v", o.timeout, o.retry)
	}
	ctx := context.Background()
	if _, err := c.Read(ctx, NewReadRequest("s")); err != nil {
		t.Fatal(err)
	}
	drain(c.ReadSession(ctx, NewReadSessionRequest("s")))
	if _, err := c.CheckTail(ctx, NewCheckTailRequest("s")); err != nil {
		t.Fatal(err)
	}
	assertRequests(t, f, &pb.ReadRequest{Stream: "s"}, &pb.ReadSessionRequest{Stream: "s"}, &pb.CheckTailRequest{Stream: "s"})
}

func TestAReadAtTheTailWithoutWaitSaysToPassAStart(t *testing.T) {
	atTail := script{err: statusErr(t, codes.OutOfRange, "start is the tail; set wait")}
	c, _ := serve(t, 0, atTail)
	_, err := c.Read(context.Background(), NewReadRequest("s"))
	var e *Error
	if !errors.As(err, &e) || e.Code != codes.OutOfRange || !strings.Contains(err.Error(), "pass a start") {
		t.Fatalf("Read at the tail = %v", err)
	}
	if _, err := c.Read(context.Background(), NewReadRequest("s", SeqNum(4))); err == nil || strings.Contains(err.Error(), "pass a start") {
		t.Fatalf("Read from a start = %v", err)
	}
}
