package s2sidecar

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Error is what the sidecar said went wrong: the gRPC code and message, plus what its
// google.rpc.Status details and trailing metadata carry. Every call of this package returns
// one for a failed RPC; get it with errors.As, or use the Is* helpers. status.Code(err)
// works too (Error has a GRPCStatus method).
type Error struct {
	Code    codes.Code
	Message string
	// Reason and Domain come from an ErrorInfo detail: Reason is S2's error code, e.g.
	// "stream_not_found".
	Reason, Domain string
	// Field is the request field to fix (a BadRequest detail), e.g. "stream".
	Field string
	// RetryAfter is a RetryInfo detail's delay: the server asks to wait at least that long.
	RetryAfter *time.Duration
	// TailSeqNum and TailTimestamp are the stream's tail (trailers s2-tail-seq-num and
	// s2-tail-timestamp), sent with OUT_OF_RANGE.
	TailSeqNum, TailTimestamp *uint64
	// NextSeqNum is where to resume a session: the session's own position when it has one,
	// else the trailer s2-next-seq-num (sent with a draining sidecar's UNAVAILABLE).
	NextSeqNum *uint64
	// Attempts is how many times the sidecar tried S2 for this call before giving up (ErrorInfo
	// metadata "attempts"; 0 when absent): the sidecar retried already, so the client does not.
	Attempts int

	status *status.Status
}

// newError reads err (from a gRPC call) and the call's trailing metadata into an *Error.
func newError(err error, trailer metadata.MD) *Error {
	st := status.Convert(err)
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			e.Reason, e.Domain = d.GetReason(), d.GetDomain()
			if n, err := strconv.Atoi(d.GetMetadata()["attempts"]); err == nil {
				e.Attempts = n
			}
		case *errdetails.BadRequest:
			if v := d.GetFieldViolations(); len(v) > 0 {
				e.Field = v[0].GetField()
			}
		case *errdetails.RetryInfo:
			delay := d.GetRetryDelay().AsDuration()
			e.RetryAfter = &delay
		}
	}
	e.TailSeqNum = trailerUint(trailer, "s2-tail-seq-num")
	e.TailTimestamp = trailerUint(trailer, "s2-tail-timestamp")
	e.NextSeqNum = trailerUint(trailer, "s2-next-seq-num")
	return e
}

func trailerUint(md metadata.MD, key string) *uint64 {
	v := md.Get(key)
	if len(v) == 0 {
		return nil
	}
	n, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		return nil // not ours to fail on: the error itself is what matters
	}
	return &n
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("s2sidecar: %s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("s2sidecar: %s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// CodeOf is the gRPC code of err: codes.OK for nil, codes.Unknown for an error not from a call.
func CodeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

// IsNotFound reports whether err says the basin or stream does not exist.
func IsNotFound(err error) bool { return CodeOf(err) == codes.NotFound }

// IsOutOfRange reports whether err says the start is past the tail (see Error.TailSeqNum).
func IsOutOfRange(err error) bool { return CodeOf(err) == codes.OutOfRange }

// IsInvalidArgument reports whether err says the request is malformed (see Error.Field).
func IsInvalidArgument(err error) bool { return CodeOf(err) == codes.InvalidArgument }

// IsUnavailable reports whether err says the sidecar or S2 could not be reached (after the
// retries, when they were on).
func IsUnavailable(err error) bool { return CodeOf(err) == codes.Unavailable }
