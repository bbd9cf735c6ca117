package s2sidecar_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

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

	session := client.ReadSession(ctx, &pb.ReadSessionRequest{
		Stream: "orders",
		Start:  &pb.ReadSessionRequest_SeqNum{SeqNum: 0},
	})
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

// Reads the tail, then one batch from 10 records before it.
func ExampleClient_Read() {
	ctx := context.Background()
	client, err := s2sidecar.New("")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	tail, err := client.CheckTail(ctx, &pb.CheckTailRequest{Stream: "orders"})
	if s2sidecar.IsNotFound(err) {
		log.Fatal("no such stream")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("next seq_num:", tail.Tail.GetSeqNum())

	batch, err := client.Read(ctx, &pb.ReadRequest{Stream: "orders", Start: &pb.ReadRequest_TailOffset{TailOffset: 10}})
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
