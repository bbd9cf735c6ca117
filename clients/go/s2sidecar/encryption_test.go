package s2sidecar

// Encrypted streams' keys against the scripted StreamService (session_test.go): which
// s2-encryption-key each call sends (the client's, a context's, on every retry and resume of a
// session, none for CheckTail), and that no error nor formatted value shows a key.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

var (
	rawKey   = bytes.Repeat([]byte{7}, 32)
	keyB64   = base64.StdEncoding.EncodeToString(rawKey)
	otherB64 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
)

func keyedClient(t *testing.T, f *fakeService, opts ...Option) *Client {
	t.Helper()
	srv := start(t, "127.0.0.1:0", f)
	policy := RetryPolicy{MaxAttempts: 5, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	c, err := New(srv.addr, append([]Option{WithRetryPolicy(policy)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.jitter = func() float64 { return 0 }
	return c
}

func TestTheClientsKeyGoesWithEveryReadAndResumeAndAContextsWins(t *testing.T) {
	down := statusErr(t, codes.Unavailable, "down")
	f := &fakeService{scripts: []script{
		{err: down}, {resp: &pb.ReadResponse{}}, // Read, retried
		{resp: &pb.ReadResponse{}},                                                                                // Read with the context's key
		{batches: []*pb.ReadSessionResponse{batch(0)}, err: down}, {batches: []*pb.ReadSessionResponse{batch(1)}}, // a resumed session
		{batches: []*pb.ReadSessionResponse{batch(0)}, err: down}, {}, // a session with the context's key, resumed
		{resp: &pb.CheckTailResponse{Tail: &pb.StreamPosition{}}},
	}}
	c := keyedClient(t, f, WithEncryptionKey(rawKey))
	ctx := context.Background()
	if _, err := c.Read(ctx, &pb.ReadRequest{Stream: "s"}); err != nil {
		t.Fatal(err)
	}
	keyed := ContextWithEncryptionKey(ctx, otherB64)
	if _, err := c.Read(keyed, &pb.ReadRequest{Stream: "s"}); err != nil {
		t.Fatal(err)
	}
	count := proto.Uint64(2)
	for _, sctx := range []context.Context{ctx, keyed} {
		s := c.ReadSession(sctx, &pb.ReadSessionRequest{Stream: "s", Count: count})
		drain(s)
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
	}
	if _, err := c.CheckTail(ctx, &pb.CheckTailRequest{Stream: "s"}); err != nil {
		t.Fatal(err)
	}
	k, o := []string{keyB64}, []string{otherB64}
	want := [][]string{k, k, o, k, k, o, o, nil}
	if !reflect.DeepEqual(f.keys, want) {
		t.Errorf("keys sent = %v, want %v", f.keys, want)
	}
	for _, shown := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), fmt.Sprint(keyed), fmt.Sprintf("%+v", c.opts)} {
		if strings.Contains(shown, keyB64) || strings.Contains(shown, otherB64) || strings.Contains(shown, string(rawKey)) {
			t.Errorf("a key is shown: %s", shown)
		}
	}
}

func TestWithoutAClientKeyOnlyAContextsIsSent(t *testing.T) {
	f := &fakeService{scripts: []script{{resp: &pb.ReadResponse{}}}}
	c := keyedClient(t, f)
	_, _ = c.Read(context.Background(), &pb.ReadRequest{Stream: "s"})
	_, _ = c.Read(ContextWithEncryptionKey(context.Background(), rawKey), &pb.ReadRequest{Stream: "s"})
	if want := [][]string{nil, {keyB64}}; !reflect.DeepEqual(f.keys, want) {
		t.Errorf("keys sent = %v, want %v", f.keys, want)
	}
}

func TestAKeyGRPCCannotCarryFailsWithoutShowingIt(t *testing.T) {
	secret := keyB64[:40] + "é"
	if _, err := New("127.0.0.1:1", WithEncryptionKey(secret)); err == nil || strings.Contains(err.Error(), keyB64[:40]) {
		t.Fatalf("New = %v", err)
	}
	f := &fakeService{scripts: []script{{resp: &pb.ReadResponse{}}}}
	c := keyedClient(t, f)
	ctx := ContextWithEncryptionKey(context.Background(), secret)
	if _, err := c.Read(ctx, &pb.ReadRequest{Stream: "s"}); err == nil || !strings.Contains(err.Error(), "printable ASCII") {
		t.Errorf("Read = %v", err)
	}
	s := c.ReadSession(ctx, &pb.ReadSessionRequest{Stream: "s"})
	if s.Next() || s.Err() == nil || strings.Contains(s.Err().Error(), keyB64[:40]) {
		t.Errorf("session: next, err = %v", s.Err())
	}
	if len(f.requests) != 0 {
		t.Errorf("%d calls went out", len(f.requests))
	}
}
