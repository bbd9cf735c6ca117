package s2sidecar

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// ErrIgnoreCommandRecordsWithLimit is the Err of a session asked for with
// ignore_command_records and a count or bytes limit, before any call: the sidecar counts the
// command records it leaves out toward the limit (as S2's SDKs do) but never sends them, so a
// resume could not reduce the limit exactly.
var ErrIgnoreCommandRecordsWithLimit = errors.New("s2sidecar: a session with ignore_command_records and a count or bytes limit cannot resume exactly (the records left out count toward the limit but are never delivered): leave the limit to the app (stop calling Next), or drop ignore_command_records")

// A SessionOption configures one ReadSession.
type SessionOption func(*Session)

// WithoutResume turns auto-resume off for a session: its first failure ends it.
func WithoutResume() SessionOption { return func(s *Session) { s.resume = false } }

// Session is an open ReadSession. Iterate it like a bufio.Scanner:
//
//	s := client.ReadSession(ctx, req)
//	defer s.Close()
//	for s.Next() {
//		for _, r := range s.Batch().Records { ... }
//	}
//	if err := s.Err(); err != nil { ... } // an *Error; NextSeqNum says where to resume
//
// A batch without records and with Tail set is a heartbeat: the session is caught up to Tail.
// CaughtUp says whether the last message (a heartbeat included) said the session is caught up.
// When the sidecar restarts the session resumes after the last record it delivered (or at the
// last heartbeat's tail), asking for what is left of req's count and bytes; see RetryPolicy.
// A Session is not safe for concurrent use.
type Session struct {
	client *Client
	ctx    context.Context
	cancel context.CancelFunc
	state  *sessionState
	resume bool

	stream     grpc.ServerStreamingClient[pb.ReadSessionResponse]
	stopStream context.CancelFunc
	batch      *pb.ReadSessionResponse
	err        error
	done       bool
}

// ReadSession streams batches of req's stream from req's start until its stop (count, bytes,
// until, wait), or for ever with none. Nothing is sent until the first Next. ctx bounds the
// whole session; Close ends it early. An encrypted stream's key is ctx's
// (ContextWithEncryptionKey), else the client's, and every resume sends it.
// req.IgnoreCommandRecords leaves command records out, every resume included (the ones after the
// last delivered record are read and left out again, none repeated); with a count or bytes
// limit the session ends at once with ErrIgnoreCommandRecordsWithLimit.
func (c *Client) ReadSession(ctx context.Context, req *pb.ReadSessionRequest, opts ...SessionOption) *Session {
	ctx, keyErr := c.withKey(ctx)
	ctx, cancel := context.WithCancel(c.outgoing(ctx))
	s := &Session{client: c, ctx: ctx, cancel: cancel, resume: true}
	if keyErr != nil {
		s.finish(keyErr) // the first Next returns false, and Err says why
	}
	if req.GetIgnoreCommandRecords() && (req.GetCount() > 0 || req.GetBytes() > 0) {
		s.finish(ErrIgnoreCommandRecordsWithLimit)
	}
	for _, opt := range opts {
		opt(s)
	}
	policy := c.opts.retry
	if !s.resume {
		policy.MaxAttempts = 1
	}
	s.state = newSessionState(req, policy, c.jitter)
	return s
}

// Next waits for the next batch (records or a heartbeat); false when the session has ended:
// at its stop (Err is nil), by Close, or on an error it did not retry (see Err).
func (s *Session) Next() bool {
	s.batch = nil
	for !s.done {
		if s.stream == nil && !s.open() {
			continue
		}
		msg, err := s.stream.Recv()
		if errors.Is(err, io.EOF) {
			s.finish(nil) // the session reached its stop
			break
		}
		s.client.noteAnswer(err)
		if err != nil {
			trailer := s.stream.Trailer()
			s.closeStream()
			s.failed(err, trailer)
			continue
		}
		s.state.onBatch(msg)
		s.batch = msg
		return true
	}
	return false
}

// open starts an attempt; false if it failed (s.done says whether to go on).
func (s *Session) open() bool {
	req, ok := s.state.request()
	if !ok {
		s.finish(nil) // what was delivered used up the count or bytes
		return false
	}
	ctx, stop := context.WithCancel(s.ctx)
	stream, err := s.client.stub.ReadSession(ctx, req, s.client.callOptions()...)
	if err != nil {
		stop()
		s.failed(err, nil)
		return false
	}
	s.stream, s.stopStream = stream, stop
	return true
}

// failed waits before the next attempt, or ends the session with the error.
func (s *Session) failed(err error, trailer metadata.MD) {
	e := newError(err, trailer)
	if s.ctx.Err() != nil {
		s.finish(s.ctx.Err()) // the caller's ctx ended: not a failure to retry
		return
	}
	delay, ok := s.state.onError(e)
	if !ok {
		s.finish(e)
		return
	}
	from := slog.String("from", "the original start")
	if e.NextSeqNum != nil {
		from = slog.Uint64("from", *e.NextSeqNum)
	}
	s.client.opts.log.Info("s2sidecar: session resumes", from, "after", delay, "error", e)
	if !sleep(s.ctx, delay) {
		s.finish(s.ctx.Err())
	}
}

func (s *Session) finish(err error) {
	s.done, s.err = true, err
	s.closeStream()
	s.cancel()
}

func (s *Session) closeStream() {
	if s.stopStream != nil {
		s.stopStream()
	}
	s.stream, s.stopStream = nil, nil
}

// CaughtUp reports whether the last message the session received said every record before the
// tail was delivered (or left out by ignore_command_records), as S2's SDKs' is_caught_up(): true
// on every heartbeat. False at the start, and after a resume until a message says otherwise.
func (s *Session) CaughtUp() bool { return s.state.caughtUp }

// Batch is the batch the last successful Next received.
func (s *Session) Batch() *pb.ReadSessionResponse { return s.batch }

// Err is why the session ended: nil at its stop or after Close, the context's error if ctx
// ended, else an *Error (with NextSeqNum, where to resume, when the position is known).
func (s *Session) Err() error { return s.err }

// Close ends the session; Next then returns false. It is safe to call more than once.
func (s *Session) Close() {
	if !s.done {
		s.finish(nil)
	}
}
