'use strict';
// The pure half of auto-resume (clients/RESUME.md): which failures are retried, how long to wait,
// and where a broken ReadSession continues. No sockets and no timers here, so all of it is
// unit-tested directly; client.js holds the thin loops that use it.
//
// uint64 fields are decimal strings (proto-loader's `longs: String`); arithmetic on them goes
// through BigInt so seq_nums and limits past 2^53 stay exact.

const { status } = require('@grpc/grpc-js');

/** S2's policy: attempt n waits min(100 ms * 2^(n-1), 1 s) plus up to as much again. */
const DEFAULT_RETRY = Object.freeze({ maxAttempts: 60, baseDelayMs: 100, maxDelayMs: 1000 });

// What a transport failure looks like when grpc-js reports it as INTERNAL or UNKNOWN.
const TRANSPORT_FAILURE = /RST_STREAM|Stream removed|Connection reset/i;

/**
 * Whether retrying can help: UNAVAILABLE; RESOURCE_EXHAUSTED or ABORTED with a RetryInfo delay;
 * INTERNAL or UNKNOWN from a broken transport; never a status the sidecar already retried S2 for
 * (ErrorInfo metadata `attempts`). Everything else (NOT_FOUND, CANCELLED,
 * DEADLINE_EXCEEDED, ...) is final. `err` is a SidecarError (`grpcCode`, `retryAfterMs`).
 */
function isRetryable(err) {
  if (err && err.metadata && err.metadata.attempts !== undefined) {
    return false; // the sidecar already retried S2 for this call
  }
  switch (err && err.grpcCode) {
    case status.UNAVAILABLE:
      return true;
    case status.RESOURCE_EXHAUSTED:
    case status.ABORTED:
      return err.retryAfterMs !== undefined;
    case status.INTERNAL:
    case status.UNKNOWN:
      return TRANSPORT_FAILURE.test(err.message);
    default:
      return false;
  }
}

/**
 * Milliseconds to wait before retrying after failure number `attempt` (1-based):
 * base = min(baseDelayMs * 2^(attempt-1), maxDelayMs), delay = base + uniform(0, base); the
 * server's RetryInfo delay wins when it is longer.
 */
function retryDelayMs(attempt, retryAfterMs, policy = DEFAULT_RETRY, random = Math.random) {
  const base = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
  return Math.max(base + random() * base, retryAfterMs || 0);
}

/** S2's metered size of a record: 8 + 2 * headers + header names and values + body. */
function meteredBytes(record) {
  let size = 8 + 2 * record.headers.length + record.body.length;
  for (const h of record.headers) size += h.name.length + h.value.length;
  return size;
}

/**
 * Where a ReadSession stands, from what it has been sent, and the request that continues it.
 * The client's own tracking is the truth: the server's `s2-next-seq-num` is never needed.
 */
class SessionCursor {
  /** @param {object} request the first ReadSessionRequest (u64 fields as strings) */
  constructor(request) {
    this.first = request;
    /** The seq_num to continue from (a string), or undefined while unknown. */
    this.nextSeqNum = request.seq_num;
    this.count = request.count === undefined ? undefined : BigInt(request.count);
    this.bytes = request.bytes === undefined ? undefined : BigInt(request.bytes);
  }

  /**
   * Takes in one ReadSessionResponse; true if it moved the session on (records, or a heartbeat
   * saying the session is caught up to the tail), which is what resets the retry budget.
   */
  advance(msg) {
    const { records } = msg;
    if (records.length) {
      this.nextSeqNum = String(BigInt(records[records.length - 1].seq_num) + 1n);
      if (this.count !== undefined) this.count -= BigInt(records.length);
      if (this.bytes !== undefined) {
        for (const r of records) this.bytes -= BigInt(meteredBytes(r));
      }
      return true;
    }
    if (msg.tail) {
      // Caught up to the tail. Never step back (a tail behind what was delivered would mean
      // asking for records again).
      const tail = BigInt(msg.tail.seq_num);
      if (this.nextSeqNum === undefined || tail > BigInt(this.nextSeqNum)) this.nextSeqNum = String(tail);
      return true;
    }
    return false;
  }

  /** True once a `count` or `bytes` stop has been used up: there is nothing left to ask for. */
  get done() {
    return (this.count !== undefined && this.count <= 0n) || (this.bytes !== undefined && this.bytes <= 0n);
  }

  /**
   * The request for the next attempt: the first one until the position is known, then from
   * `nextSeqNum` with what is left of `count` and `bytes`; `until`, `clamp` and `wait` unchanged.
   */
  request() {
    if (this.nextSeqNum === undefined) return this.first;
    const req = { ...this.first, seq_num: this.nextSeqNum };
    delete req.timestamp; // seq_num replaces whichever start the session had
    delete req.tail_offset;
    if (this.count !== undefined) req.count = String(this.count);
    if (this.bytes !== undefined) req.bytes = String(this.bytes);
    return req;
  }
}

module.exports = { DEFAULT_RETRY, isRetryable, retryDelayMs, meteredBytes, SessionCursor };
