// Command s2sidecar-example reads S2 streams through an s2-sidecar with the generated Go stubs.
//
//	s2sidecar-example -addr 127.0.0.1:50051 read   -stream orders -seq-num 0 -count 100
//	s2sidecar-example -addr 127.0.0.1:50051 read   -stream orders -timestamp 1700000005000 -until 1700000008000
//	s2sidecar-example -addr 127.0.0.1:50051 follow -stream orders -tail-offset 10 -n 11
//	s2sidecar-example -addr 127.0.0.1:50051 tail   -stream orders
//	s2sidecar-example -addr unix:/run/s2-sidecar.sock tail -stream orders
//
// -token (default: env S2_SIDECAR_APP_TOKEN) sends the sidecar's app token as
// `authorization: Bearer <token>`. It prints one JSON object per line: a record, a tail, or an error (then exits with status 2).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "sidecar address: host:port or unix:/path")
	token := flag.String("token", os.Getenv("S2_SIDECAR_APP_TOKEN"), "the sidecar's app token, if it requires one")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: s2sidecar-example [-addr ADDR] read|follow|tail -stream NAME [options]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(64)
	}
	cmd := flag.Arg(0)
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	basin := fs.String("basin", "", "basin (empty: the sidecar's default basin)")
	stream := fs.String("stream", "", "stream name")
	seqNum := fs.Int64("seq-num", -1, "start at this seq_num")
	timestamp := fs.Int64("timestamp", -1, "start at the first record with timestamp >= this (ms)")
	tailOffset := fs.Int64("tail-offset", -1, "start this many records before the tail")
	count := fs.Int64("count", -1, "stop after this many records")
	until := fs.Int64("until", -1, "stop before the first record with timestamp >= this (ms)")
	n := fs.Int("n", 0, "follow: exit after this many records (0: follow for ever)")
	_ = fs.Parse(flag.Args()[1:])

	conn, err := grpc.Dial(*addr, grpc.WithInsecure())
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	client := pb.NewStreamServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}

	switch cmd {
	case "read":
		req := &pb.ReadRequest{Basin: *basin, Stream: *stream}
		switch {
		case *seqNum >= 0:
			req.Start = &pb.ReadRequest_SeqNum{SeqNum: uint64(*seqNum)}
		case *timestamp >= 0:
			req.Start = &pb.ReadRequest_Timestamp{Timestamp: uint64(*timestamp)}
		case *tailOffset >= 0:
			req.Start = &pb.ReadRequest_TailOffset{TailOffset: uint64(*tailOffset)}
		}
		req.Count = optional(*count)
		req.Until = optional(*until)
		var trailer metadata.MD
		callCtx, done := context.WithTimeout(ctx, 30*time.Second)
		defer done()
		resp, err := client.Read(callCtx, req, grpc.Trailer(&trailer))
		if err != nil {
			failRPC(err, trailer)
		}
		for _, r := range resp.Records {
			printRecord(r)
		}
	case "follow":
		req := &pb.ReadSessionRequest{Basin: *basin, Stream: *stream}
		switch {
		case *seqNum >= 0:
			req.Start = &pb.ReadSessionRequest_SeqNum{SeqNum: uint64(*seqNum)}
		case *timestamp >= 0:
			req.Start = &pb.ReadSessionRequest_Timestamp{Timestamp: uint64(*timestamp)}
		case *tailOffset >= 0:
			req.Start = &pb.ReadSessionRequest_TailOffset{TailOffset: uint64(*tailOffset)}
		}
		req.Count = optional(*count)
		req.Until = optional(*until)
		session, err := client.ReadSession(ctx, req)
		if err != nil {
			failRPC(err, nil)
		}
		seen := 0
		for {
			msg, err := session.Recv()
			if errors.Is(err, io.EOF) {
				return // the session reached its stop
			}
			if err != nil {
				failRPC(err, session.Trailer())
			}
			if len(msg.Records) == 0 {
				continue // a heartbeat: caught up to msg.Tail, still healthy
			}
			for _, r := range msg.Records {
				printRecord(r)
				seen++
				if *n > 0 && seen >= *n {
					return // cancel() ends the session
				}
			}
		}
	case "tail":
		var trailer metadata.MD
		callCtx, done := context.WithTimeout(ctx, 30*time.Second)
		defer done()
		resp, err := client.CheckTail(callCtx, &pb.CheckTailRequest{Basin: *basin, Stream: *stream}, grpc.Trailer(&trailer))
		if err != nil {
			failRPC(err, trailer)
		}
		emit(map[string]interface{}{"tail": map[string]uint64{
			"seq_num": resp.Tail.GetSeqNum(), "timestamp": resp.Tail.GetTimestamp(),
		}})
	default:
		flag.Usage()
		os.Exit(64)
	}
}

func optional(v int64) *uint64 {
	if v < 0 {
		return nil
	}
	u := uint64(v)
	return &u
}

func printRecord(r *pb.SequencedRecord) {
	headers := make([][2]string, 0, len(r.Headers))
	for _, h := range r.Headers {
		headers = append(headers, [2]string{string(h.Name), string(h.Value)})
	}
	emit(map[string]interface{}{
		"seq_num": r.SeqNum, "timestamp": r.Timestamp, "headers": headers, "body": string(r.Body),
	})
}

func emit(v interface{}) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

// failRPC prints what the sidecar said went wrong: the gRPC code and message, and from the
// google.rpc.Status details the S2 error code (ErrorInfo.reason), the field to fix (BadRequest)
// and when to retry (RetryInfo); trailing metadata gives the tail (OUT_OF_RANGE) or where to
// resume a session (UNAVAILABLE).
func failRPC(err error, trailer metadata.MD) {
	st := status.Convert(err)
	out := map[string]interface{}{"error": st.Code().String(), "message": st.Message()}
	for _, d := range st.Details() {
		switch info := d.(type) {
		case *errdetails.ErrorInfo:
			out["reason"] = info.Reason
			out["domain"] = info.Domain
		case *errdetails.BadRequest:
			for _, v := range info.FieldViolations {
				out["field"] = v.Field
			}
		case *errdetails.RetryInfo:
			out["retry_after_ms"] = info.RetryDelay.GetSeconds()*1000 + int64(info.RetryDelay.GetNanos())/1e6
		}
	}
	for _, key := range []string{"s2-tail-seq-num", "s2-tail-timestamp", "s2-next-seq-num"} {
		if v := trailer.Get(key); len(v) > 0 {
			out[strings.ReplaceAll(strings.TrimPrefix(key, "s2-"), "-", "_")] = v[0]
		}
	}
	if st.Code() == codes.NotFound && out["reason"] == "stream_not_found" {
		out["hint"] = "no such stream: check the name or create it"
	}
	emit(out)
	os.Exit(2)
}

func fail(err error) {
	emit(map[string]string{"error": err.Error()})
	os.Exit(2)
}
