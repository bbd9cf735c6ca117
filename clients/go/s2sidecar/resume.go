package s2sidecar

// Auto-resume without I/O (clients/RESUME.md): which failures are retried, how long to wait, and
// where a retried session starts. The client's loops only call, sleep and iterate.

import (
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// RetryPolicy says how calls ride out a sidecar restart. A zero field takes its default.
//
// MaxAttempts is the number of attempts in a row without progress before the last error is
// returned (default 60, about a minute: enough for a 30 s restart; 1 never retries). Retry n
// (1, 2, ...) waits base = min(MinBackoff * 2^(n-1), MaxBackoff) plus up to as much again of
// jitter, or the server's RetryInfo delay if that is longer. MinBackoff and MaxBackoff
// (default 100 ms and 1 s, S2's policy) also bound the reconnect backoff of the connection
// the client dials.
type RetryPolicy struct {
	MaxAttempts int
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
}

// DefaultRetryPolicy is S2's: 60 attempts, 100 ms to 1 s.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 60, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = DefaultRetryPolicy.MinBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = max(DefaultRetryPolicy.MaxBackoff, p.MinBackoff)
	}
	return p
}

// backoff is the wait before retry number attempt (1, 2, ...); jitter is uniform in [0, 1).
func (p RetryPolicy) backoff(attempt int, jitter float64) time.Duration {
	base := p.MaxBackoff
	// 2^(attempt-1) overflows long after the cap is reached: stop doubling there.
	if attempt <= 32 {
		base = min(p.MinBackoff<<(attempt-1), p.MaxBackoff)
	}
	return base + time.Duration(jitter*float64(base))
}

// transportFailures mark an INTERNAL or UNKNOWN status as a broken connection, not a server bug.
var transportFailures = []string{"rst_stream", "stream removed", "connection reset"}

// retryable is the table in RESUME.md. CANCELLED and DEADLINE_EXCEEDED are the caller's own doing.
func retryable(e *Error) bool {
	if e.Attempts > 0 {
		return false // the sidecar already retried S2 for this call
	}
	switch e.Code {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted, codes.Aborted:
		return e.RetryAfter != nil
	case codes.Internal, codes.Unknown:
		msg := strings.ToLower(e.Message)
		for _, s := range transportFailures {
			if strings.Contains(msg, s) {
				return true
			}
		}
	}
	return false
}

// attempts counts failures in a row since the last progress, against a policy's budget.
type attempts struct {
	policy   RetryPolicy
	failures int
	jitter   func() float64
}

func newAttempts(policy RetryPolicy, jitter func() float64) *attempts {
	if jitter == nil {
		jitter = rand.Float64
	}
	return &attempts{policy: policy.withDefaults(), jitter: jitter}
}

func (a *attempts) progress() { a.failures = 0 }

// retryDelay is how long to wait before trying again after e; ok is false to return e instead:
// not retryable, budget spent, or no time left for another attempt before deadline (zero: none).
func (a *attempts) retryDelay(e *Error, now, deadline time.Time) (delay time.Duration, ok bool) {
	if !retryable(e) {
		return 0, false
	}
	a.failures++
	if a.failures >= a.policy.MaxAttempts {
		return 0, false
	}
	delay = a.policy.backoff(a.failures, a.jitter())
	if e.RetryAfter != nil {
		delay = max(delay, *e.RetryAfter)
	}
	if !deadline.IsZero() && !now.Add(delay).Before(deadline) {
		return 0, false
	}
	return delay, true
}

// MeteredBytes is S2's metered size of a record, the unit of a `bytes` limit:
// 8 + 2 * len(headers) + sum(len(name) + len(value)) + len(body).
func MeteredBytes(r *pb.SequencedRecord) uint64 {
	n := 8 + 2*len(r.GetHeaders()) + len(r.GetBody())
	for _, h := range r.GetHeaders() {
		n += len(h.GetName()) + len(h.GetValue())
	}
	return uint64(n)
}

// sessionState is one resuming ReadSession: its position, what it has delivered, and the request
// that continues it. Feed it every batch (heartbeats included) and every failure.
type sessionState struct {
	original       *pb.ReadSessionRequest
	attempts       *attempts
	nextSeqNum     uint64
	positioned     bool // nextSeqNum is known: a record or a heartbeat said where the session is
	deliveredCount uint64
	deliveredBytes uint64
	caughtUp       bool // what the last message said; a resume starts behind
}

func newSessionState(req *pb.ReadSessionRequest, policy RetryPolicy, jitter func() float64) *sessionState {
	s := &sessionState{original: req, attempts: newAttempts(policy, jitter)}
	if start, ok := req.GetStart().(*pb.ReadSessionRequest_SeqNum); ok {
		// Not yet "positioned" (the first request is the original), but a failure before the
		// first batch still knows where to resume.
		s.nextSeqNum = start.SeqNum
	}
	return s
}

func (s *sessionState) onBatch(b *pb.ReadSessionResponse) {
	s.caughtUp = b.GetCaughtUp()
	switch records := b.GetRecords(); {
	case len(records) > 0:
		s.nextSeqNum = records[len(records)-1].GetSeqNum() + 1
		s.deliveredCount += uint64(len(records))
		for _, r := range records {
			s.deliveredBytes += MeteredBytes(r)
		}
	case b.Tail != nil:
		// A heartbeat: caught up at the tail, so a follower that has seen no record yet still
		// reads what is appended while the sidecar is down.
		s.nextSeqNum = b.Tail.GetSeqNum()
	default:
		return
	}
	s.positioned = true
	s.attempts.progress()
}

// onError tells e where to resume (the client's own position wins over the server's
// s2-next-seq-num) and returns how long to wait before request(); ok false: return e.
func (s *sessionState) onError(e *Error) (time.Duration, bool) {
	s.caughtUp = false
	if _, fromSeqNum := s.original.GetStart().(*pb.ReadSessionRequest_SeqNum); s.positioned || fromSeqNum {
		e.NextSeqNum = proto.Uint64(s.nextSeqNum)
	}
	return s.attempts.retryDelay(e, time.Time{}, time.Time{}) // a session has no deadline of its own
}

// request is the request for the next attempt (the original until something was delivered or a
// heartbeat seen); ok is false when what was delivered used up the session's count or bytes
// limit, so the session has ended.
func (s *sessionState) request() (req *pb.ReadSessionRequest, ok bool) {
	req = proto.Clone(s.original).(*pb.ReadSessionRequest)
	if s.positioned {
		req.Start = &pb.ReadSessionRequest_SeqNum{SeqNum: s.nextSeqNum} // replaces a timestamp or tail_offset
	}
	if req.Count, ok = reduce(req.Count, s.deliveredCount); !ok {
		return nil, false
	}
	if req.Bytes, ok = reduce(req.Bytes, s.deliveredBytes); !ok {
		return nil, false
	}
	return req, true
}

// reduce takes used off an optional limit; ok is false when something was used and nothing is left.
func reduce(limit *uint64, used uint64) (*uint64, bool) {
	if limit == nil || used == 0 {
		return limit, true
	}
	if *limit <= used {
		return nil, false
	}
	return proto.Uint64(*limit - used), true
}
