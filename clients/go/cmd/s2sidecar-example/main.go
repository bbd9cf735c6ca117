// Command s2sidecar-example reads S2 streams through an s2-sidecar with the s2sidecar client package.
//
//	s2sidecar-example -addr 127.0.0.1:50051 read   -stream orders -seq-num 0 -count 100
//	s2sidecar-example -addr 127.0.0.1:50051 read   -stream orders -timestamp 1700000005000 -until 1700000008000
//	s2sidecar-example -addr 127.0.0.1:50051 follow -stream orders -tail-offset 10 -n 11
//	s2sidecar-example -addr 127.0.0.1:50051 tail   -stream orders
//	s2sidecar-example -addr unix:/run/s2-sidecar.sock tail -stream orders
//
// -token (default: env S2_SIDECAR_APP_TOKEN) sends the sidecar's app token as
// `authorization: Bearer <token>`; -no-retry turns retries and resuming off. An encrypted
// stream's key (base64): -encryption-key is the client's (handed to it as the raw bytes),
// -call-encryption-key after the command this call's (handed over as the string), which wins. It prints one JSON object per line: a record, a tail, or an error (then exits with status 2).
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecar"
	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

func main() {
	addr := flag.String("addr", s2sidecar.DefaultTarget(), "sidecar address: host:port or unix:/path (default: env S2_SIDECAR_ADDRESS, else 127.0.0.1:50051)")
	token := flag.String("token", os.Getenv("S2_SIDECAR_APP_TOKEN"), "the sidecar's app token, if it requires one")
	clientKey := flag.String("encryption-key", "", "the client's key for encrypted streams (base64)")
	noRetry := flag.Bool("no-retry", false, "never retry a failed call nor resume a session (a first call still waits for the sidecar to start)")
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
	callKey := fs.String("call-encryption-key", "", "this call's key for an encrypted stream (base64), instead of the client's")
	_ = fs.Parse(flag.Args()[1:])

	opts := []s2sidecar.Option{s2sidecar.WithToken(*token)}
	if *clientKey != "" {
		raw, err := base64.StdEncoding.DecodeString(*clientKey)
		if err != nil {
			fail(errors.New("-encryption-key is not base64")) // not the value: it may be a key
		}
		opts = append(opts, s2sidecar.WithEncryptionKey(raw))
	}
	if *noRetry {
		opts = append(opts, s2sidecar.WithRetryPolicy(s2sidecar.RetryPolicy{MaxAttempts: 1}))
	}
	client, err := s2sidecar.New(*addr, opts...)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	ctx := context.Background()
	if *callKey != "" {
		ctx = s2sidecar.ContextWithEncryptionKey(ctx, *callKey)
	}

	switch cmd {
	case "read":
		req := s2sidecar.NewReadRequest(*stream, readOptions(*basin, *seqNum, *timestamp, *tailOffset, *count, *until)...)
		resp, err := client.Read(ctx, req) // retried while the sidecar restarts, within 30 s
		if err != nil {
			fail(err)
		}
		for _, r := range resp.Records {
			printRecord(r)
		}
	case "follow":
		req := s2sidecar.NewReadSessionRequest(*stream, readOptions(*basin, *seqNum, *timestamp, *tailOffset, *count, *until)...)
		session := client.ReadSession(ctx, req) // resumes across sidecar restarts
		defer session.Close()
		seen := 0
		for session.Next() {
			// a batch without records is a heartbeat: caught up to its tail, still healthy
			for _, r := range session.Batch().Records {
				printRecord(r)
				seen++
				if *n > 0 && seen >= *n {
					return // the deferred Close ends the session
				}
			}
		}
		if err := session.Err(); err != nil {
			fail(err)
		}
	case "tail":
		resp, err := client.CheckTail(ctx, s2sidecar.NewCheckTailRequest(*stream, s2sidecar.Basin(*basin)))
		if err != nil {
			fail(err)
		}
		emit(map[string]any{"tail": map[string]uint64{
			"seq_num": resp.Tail.GetSeqNum(), "timestamp": resp.Tail.GetTimestamp(),
		}})
	default:
		flag.Usage()
		os.Exit(64)
	}
}

// readOptions are the flags as request options; a negative flag was not given. No start is the
// tail, as the proto says.
func readOptions(basin string, seqNum, timestamp, tailOffset, count, until int64) []s2sidecar.ReadOption {
	opts := []s2sidecar.ReadOption{s2sidecar.Basin(basin)}
	switch {
	case seqNum >= 0:
		opts = append(opts, s2sidecar.SeqNum(uint64(seqNum)))
	case timestamp >= 0:
		opts = append(opts, s2sidecar.Timestamp(uint64(timestamp)))
	case tailOffset >= 0:
		opts = append(opts, s2sidecar.TailOffset(uint64(tailOffset)))
	}
	if count >= 0 {
		opts = append(opts, s2sidecar.Count(uint64(count)))
	}
	if until >= 0 {
		opts = append(opts, s2sidecar.Until(uint64(until)))
	}
	return opts
}

func printRecord(r *pb.SequencedRecord) {
	headers := make([][2]string, 0, len(r.Headers))
	for _, h := range r.Headers {
		headers = append(headers, [2]string{string(h.Name), string(h.Value)})
	}
	emit(map[string]any{
		"seq_num": r.SeqNum, "timestamp": r.Timestamp, "headers": headers, "body": string(r.Body),
	})
}

func emit(v any) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

// fail prints what the sidecar said went wrong (an *s2sidecar.Error: the gRPC code and message,
// the S2 error code, the field to fix, when to retry, the tail or where to resume a session), or
// any other error as is, and exits 2.
func fail(err error) {
	var e *s2sidecar.Error
	if !errors.As(err, &e) {
		emit(map[string]string{"error": err.Error()})
		os.Exit(2)
	}
	out := map[string]any{"error": e.Code.String(), "message": e.Message}
	if e.Reason != "" {
		out["reason"], out["domain"] = e.Reason, e.Domain
	}
	if e.Field != "" {
		out["field"] = e.Field
	}
	if e.RetryAfter != nil {
		out["retry_after_ms"] = e.RetryAfter.Milliseconds()
	}
	for key, v := range map[string]*uint64{"tail_seq_num": e.TailSeqNum, "tail_timestamp": e.TailTimestamp, "next_seq_num": e.NextSeqNum} {
		if v != nil {
			out[key] = *v
		}
	}
	if s2sidecar.IsNotFound(err) && e.Reason == "stream_not_found" {
		out["hint"] = "no such stream: check the name or create it"
	}
	emit(out)
	os.Exit(2)
}
