package s2sidecar_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecar"
	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// Follows a stream from its first record, across sidecar restarts.
func Example() {
	ctx := context.Background()
	client, err := s2sidecar.New("") // S2_SIDECAR_ADDRESS, else 127.0.0.1:50051
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	session := client.ReadSession(ctx, s2sidecar.NewReadSessionRequest("orders", s2sidecar.SeqNum(0)))
	defer session.Close()
	for session.Next() {
		for _, r := range session.Batch().Records {
			fmt.Printf("%d %s\n", r.SeqNum, r.Body)
		}
	}
	var e *s2sidecar.Error
	if err := session.Err(); errors.As(err, &e) && e.NextSeqNum != nil {
		log.Fatalf("%v (resume at %d)", err, *e.NextSeqNum)
	} else if err != nil {
		log.Fatal(err)
	}
}

// Reads the tail (asking S2, not the sidecar's cache), then the last 10 records.
func ExampleClient_Read() {
	ctx := context.Background()
	client, err := s2sidecar.New("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	tail, err := client.CheckTail(ctx, s2sidecar.NewCheckTailRequest("orders", s2sidecar.MaxStaleness(0)))
	if s2sidecar.IsNotFound(err) {
		log.Fatal("no such stream")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("next seq_num:", tail.Tail.GetSeqNum())

	batch, err := client.Read(ctx, s2sidecar.NewReadRequest("orders", s2sidecar.TailOffset(10), s2sidecar.Count(10)))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range batch.Records {
		fmt.Printf("%d %s\n", r.SeqNum, r.Body)
	}
}

// At start, waits up to a minute for a sidecar that starts with the app.
func ExampleClient_WaitForReady() {
	client, err := s2sidecar.New("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := client.WaitForReady(ctx); err != nil {
		log.Fatal(err) // s2-sidecar at 127.0.0.1:50051 is not ready (connection TRANSIENT_FAILURE): context deadline exceeded
	}
}

// The same request, raw: the generated types, as the sidecar's proto spells them.
func ExampleNewReadRequest() {
	req := s2sidecar.NewReadRequest("orders", s2sidecar.SeqNum(0), s2sidecar.Count(100), s2sidecar.Wait(5))
	raw := &pb.ReadRequest{Stream: "orders", Start: &pb.ReadRequest_SeqNum{SeqNum: 0}, Count: proto.Uint64(100), Wait: proto.Uint32(5)}
	fmt.Println(proto.Equal(req, raw))
	// Output: true
}
