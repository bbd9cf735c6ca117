package s2sidecar

import (
	"time"

	pb "github.com/s2-sidecar/s2-sidecar/clients/go/s2sidecarv1"
)

// Requests without the generated code's pointers and oneof wrappers:
//
//	client.Read(ctx, s2sidecar.NewReadRequest("orders", s2sidecar.SeqNum(0), s2sidecar.Count(100)))
//	client.ReadSession(ctx, s2sidecar.NewReadSessionRequest("orders", s2sidecar.TailOffset(10)))
//	client.CheckTail(ctx, s2sidecar.NewCheckTailRequest("orders", s2sidecar.MaxStaleness(0)))
//
// With no option a request names the stream alone, and means what the proto says: no start is
// the tail (TailOffset(0)), no stop, no wait, no clamp, the sidecar's default basin. The raw
// requests (&pb.ReadRequest{...}) work as well; these only build them.

// A ReadOption sets a field of a ReadRequest or a ReadSessionRequest.
type ReadOption interface{ applyRead(*readFields) }

// A TailOption sets a field of a CheckTailRequest.
type TailOption interface{ applyTail(*pb.CheckTailRequest) }

type startKind int

const (
	startNone startKind = iota
	startSeqNum
	startTimestamp
	startTailOffset
)

// readFields are what ReadRequest and ReadSessionRequest share.
type readFields struct {
	basin                 string
	start                 startKind // startNone: the tail
	startValue            uint64
	count, bytes, until   *uint64
	clamp, ignoreCommands bool
	wait                  *uint32
}

type readOption func(*readFields)

func (o readOption) applyRead(f *readFields) { o(f) }

// BasinOption names the basin of a request; it is both a ReadOption and a TailOption.
type BasinOption string

func (b BasinOption) applyRead(f *readFields)          { f.basin = string(b) }
func (b BasinOption) applyTail(r *pb.CheckTailRequest) { r.Basin = string(b) }

// Basin names the basin; without it the request uses the sidecar's default basin.
func Basin(name string) BasinOption { return BasinOption(name) }

func u64(v uint64) *uint64 { return &v }

// SeqNum starts at this sequence number. A later start option replaces an earlier one.
func SeqNum(n uint64) ReadOption {
	return readOption(func(f *readFields) {
		f.start, f.startValue = startSeqNum, n
	})
}

// Timestamp starts at the first record whose timestamp (milliseconds) is >= ms.
func Timestamp(ms uint64) ReadOption {
	return readOption(func(f *readFields) {
		f.start, f.startValue = startTimestamp, ms
	})
}

// TailOffset starts n records before the tail (saturating at the first record); TailOffset(0)
// is the tail, as no start is.
func TailOffset(n uint64) ReadOption {
	return readOption(func(f *readFields) {
		f.start, f.startValue = startTailOffset, n
	})
}

// Count stops after n records (for Read, at most 1000 are returned; 0 reads nothing).
func Count(n uint64) ReadOption { return readOption(func(f *readFields) { f.count = u64(n) }) }

// Bytes stops before exceeding n metered bytes (for Read, at most 1 MiB).
func Bytes(n uint64) ReadOption { return readOption(func(f *readFields) { f.bytes = u64(n) }) }

// Until stops before the first record whose timestamp (milliseconds) is >= ms.
func Until(ms uint64) ReadOption { return readOption(func(f *readFields) { f.until = u64(ms) }) }

// Clamp starts at the tail instead of failing (OUT_OF_RANGE) when the start is past it.
func Clamp() ReadOption { return readOption(func(f *readFields) { f.clamp = true }) }

// Wait is how long to wait at the tail, in seconds (at most 60): Read long-polls for a record;
// a session with a stop ends after that long without a record.
func Wait(seconds uint32) ReadOption {
	return readOption(func(f *readFields) { f.wait = &seconds })
}

// IgnoreCommandRecords leaves command records (fence, trim) out; they still count toward Count
// and Bytes, as in S2's SDKs (a session refuses it with either: ErrIgnoreCommandRecordsWithLimit).
func IgnoreCommandRecords() ReadOption {
	return readOption(func(f *readFields) { f.ignoreCommands = true })
}

func readFieldsOf(opts []ReadOption) readFields {
	var f readFields
	for _, o := range opts {
		o.applyRead(&f)
	}
	return f
}

// NewReadRequest is a Read of stream with opts (none: one batch at the tail, which fails with
// OUT_OF_RANGE unless Wait says how long to wait for a record there).
func NewReadRequest(stream string, opts ...ReadOption) *pb.ReadRequest {
	f := readFieldsOf(opts)
	req := &pb.ReadRequest{
		Basin: f.basin, Stream: stream, Count: f.count, Bytes: f.bytes, Until: f.until,
		Clamp: f.clamp, Wait: f.wait, IgnoreCommandRecords: f.ignoreCommands,
	}
	switch f.start {
	case startSeqNum:
		req.Start = &pb.ReadRequest_SeqNum{SeqNum: f.startValue}
	case startTimestamp:
		req.Start = &pb.ReadRequest_Timestamp{Timestamp: f.startValue}
	case startTailOffset:
		req.Start = &pb.ReadRequest_TailOffset{TailOffset: f.startValue}
	}
	return req
}

// NewReadSessionRequest is a ReadSession of stream with opts (none: follow new records from the
// tail for ever).
func NewReadSessionRequest(stream string, opts ...ReadOption) *pb.ReadSessionRequest {
	f := readFieldsOf(opts)
	req := &pb.ReadSessionRequest{
		Basin: f.basin, Stream: stream, Count: f.count, Bytes: f.bytes, Until: f.until,
		Clamp: f.clamp, Wait: f.wait, IgnoreCommandRecords: f.ignoreCommands,
	}
	switch f.start {
	case startSeqNum:
		req.Start = &pb.ReadSessionRequest_SeqNum{SeqNum: f.startValue}
	case startTimestamp:
		req.Start = &pb.ReadSessionRequest_Timestamp{Timestamp: f.startValue}
	case startTailOffset:
		req.Start = &pb.ReadSessionRequest_TailOffset{TailOffset: f.startValue}
	}
	return req
}

type tailOption func(*pb.CheckTailRequest)

func (o tailOption) applyTail(r *pb.CheckTailRequest) { o(r) }

// MaxStaleness is how old a tail the sidecar may answer from its cache (whole milliseconds);
// 0 asks S2 unless a live session vouches for the tail. Without it: the sidecar's default
// (--tail-max-staleness, 1 s).
func MaxStaleness(d time.Duration) TailOption {
	ms := uint32(max(d.Milliseconds(), 0))
	return tailOption(func(r *pb.CheckTailRequest) { r.MaxStalenessMs = &ms })
}

// NewCheckTailRequest is a CheckTail of stream with opts.
func NewCheckTailRequest(stream string, opts ...TailOption) *pb.CheckTailRequest {
	req := &pb.CheckTailRequest{Stream: stream}
	for _, o := range opts {
		o.applyTail(req)
	}
	return req
}
