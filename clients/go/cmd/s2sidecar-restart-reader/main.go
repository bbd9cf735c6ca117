// Command s2sidecar-restart-reader is the Go client's driver for the restart test
// (tests/clients/restarts.py; "The restart test's driver" in clients/RESUME.md):
//
//	s2sidecar-restart-reader --addr ADDR --stream STREAM --start-seq-num N [--count N] [--encryption-key KEY]
//
// It opens one auto-resuming ReadSession from seq_num N in the sidecar's default basin (with
// count if given, else following live for ever) and prints `<seq_num> <body>` per record,
// flushed after each batch. It exits 0 when the session ends; on an error the client does not
// retry it writes `error <STATUS_NAME>: <message>` to stderr and exits 1. Resumes are logged to
// stderr. --encryption-key (base64) is the client's key for an encrypted stream.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"

	"github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecar"
	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

func main() {
	addr := flag.String("addr", s2sidecar.DefaultTarget(), "sidecar address")
	stream := flag.String("stream", "", "stream name")
	start := flag.Uint64("start-seq-num", 0, "first seq_num to read")
	count := flag.Int64("count", -1, "records to read (default: follow for ever)")
	key := flag.String("encryption-key", "", "the key of an encrypted stream (base64 of 32 bytes)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := []s2sidecar.Option{s2sidecar.WithLogger(log)}
	if *key != "" {
		opts = append(opts, s2sidecar.WithEncryptionKey(*key))
	}
	client, err := s2sidecar.New(*addr, opts...)
	if err != nil {
		fail(err)
	}
	defer client.Close()
	req := &pb.ReadSessionRequest{Stream: *stream, Start: &pb.ReadSessionRequest_SeqNum{SeqNum: *start}}
	if *count >= 0 {
		n := uint64(*count)
		req.Count = &n
	}

	session := client.ReadSession(context.Background(), req)
	defer session.Close()
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	for session.Next() {
		for _, r := range session.Batch().Records {
			fmt.Fprintf(out, "%d %s\n", r.SeqNum, r.Body)
		}
		if err := out.Flush(); err != nil {
			fail(err) // the reader went away
		}
	}
	if err := session.Err(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	var e *s2sidecar.Error
	if errors.As(err, &e) {
		fmt.Fprintf(os.Stderr, "error %s: %s\n", statusName(e.Code), e.Message)
	} else {
		fmt.Fprintf(os.Stderr, "error %s: %s\n", statusName(codes.Unknown), err)
	}
	os.Exit(1)
}

// statusName is the canonical name of a gRPC code ("NOT_FOUND"); codes.Code.String() is
// "NotFound".
func statusName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) && c != codes.OK {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
