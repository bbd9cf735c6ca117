'use strict';
// A small Node.js client for s2-sidecar: promise-based `read` / `checkTail`, an async iterator for
// `readSession`, and typed errors built from the gRPC status, its google.rpc.Status details
// (ErrorInfo, RetryInfo, BadRequest) and the sidecar's trailing metadata.
//
// Every call rides out a sidecar restart (clients/RESUME.md): sessions resume where they stood,
// `read` and `checkTail` retry within their deadline. The rules live in ./resume.js.
//
//   const { S2SidecarClient } = require('@s2-sidecar/client');
//   const client = new S2SidecarClient(); // S2_SIDECAR_ADDRESS, else 127.0.0.1:50051
//   await client.waitForReady(10000);     // optional: calls wait for the first connection anyway
//   const batch = await client.read('orders', { seqNum: 0, count: 100 }); // no start: the tail
//   for await (const batch of client.readSession('orders', { tailOffset: 10 })) { ... }
//
// Numbers: uint64 fields arrive as strings (JS numbers lose precision above 2^53); bodies and
// header names/values as Buffers. Heartbeats are skipped unless `{ heartbeats: true }`.

const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const { DEFAULT_RETRY, isRetryable, retryDelayMs, SessionCursor } = require('./resume');

const STARTS = ['seqNum', 'timestamp', 'tailOffset'];

// The contract, loaded at run time (nothing generated) from the package's own copy of
// proto/s2sidecar/ (clients/node/proto/, kept identical by `python tools/genproto.py`), so an
// installed package needs nothing from the repository. S2SIDECAR_PROTO overrides the path.
const PROTO = process.env.S2SIDECAR_PROTO ||
  path.resolve(__dirname, '..', 'proto', 's2sidecar', 'v1', 'stream.proto');

const definition = protoLoader.loadSync(PROTO, {
  keepCase: true, // snake_case field names, as in the .proto and S2's docs
  longs: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
});
const StreamService = grpc.loadPackageDefinition(definition).s2sidecar.v1.StreamService;

// google.rpc.Status and the three detail messages the sidecar sends (same field numbers as
// googleapis' google/rpc/status.proto and error_details.proto).
const rpc = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
            Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
            RetryInfo: { fields: { retry_delay: { type: 'google.protobuf.Duration', id: 1 } } },
            BadRequest: {
              fields: { field_violations: { rule: 'repeated', type: 'FieldViolation', id: 1 } },
              nested: {
                FieldViolation: {
                  fields: { field: { type: 'string', id: 1 }, description: { type: 'string', id: 2 } },
                },
              },
            },
          },
        },
      },
    },
  },
});
const Status = rpc.lookupType('google.rpc.Status');
const DETAIL_TYPES = {
  'type.googleapis.com/google.rpc.ErrorInfo': rpc.lookupType('google.rpc.ErrorInfo'),
  'type.googleapis.com/google.rpc.RetryInfo': rpc.lookupType('google.rpc.RetryInfo'),
  'type.googleapis.com/google.rpc.BadRequest': rpc.lookupType('google.rpc.BadRequest'),
};

/** Any failed call. `code` is the gRPC status name ("NOT_FOUND"), `reason` S2's error code. */
class SidecarError extends Error {
  constructor(status, info) {
    super(info.message);
    this.name = this.constructor.name;
    this.code = grpc.status[status.code] || String(status.code);
    this.grpcCode = status.code;
    this.reason = info.reason;
    this.metadata = info.metadata;
    this.retryAfterMs = info.retryAfterMs;
    this.field = info.field;
    this.trailers = info.trailers;
    /**
     * Where a failed session should resume (`{ seqNum: nextSeqNum }`): the session's own position
     * when it knows it, else what the sidecar said (a drain's `s2-next-seq-num`), else undefined.
     */
    this.nextSeqNum = info.trailers['s2-next-seq-num'] || info.metadata.next_seq_num;
  }
}
class InvalidArgument extends SidecarError {}
class NotFound extends SidecarError {}
class StreamNotFound extends NotFound {}
class BasinNotFound extends NotFound {}
class RangeNotSatisfiable extends SidecarError {
  /** The tail: `{ seq_num, timestamp }` (strings). */
  get tail() {
    return {
      seq_num: this.trailers['s2-tail-seq-num'] || this.metadata.tail_seq_num,
      timestamp: this.trailers['s2-tail-timestamp'] || this.metadata.tail_timestamp,
    };
  }
}
class Unavailable extends SidecarError {}

/**
 * A call ended by its `signal`, as Node's own APIs reject (`name` 'AbortError', `code`
 * 'ABORT_ERR', the signal's reason as `cause`). Not a SidecarError: the sidecar did not fail.
 */
class AbortError extends Error {
  constructor(signal) {
    super('The operation was aborted', { cause: signal && signal.reason });
    this.name = 'AbortError';
    this.code = 'ABORT_ERR';
  }
}
class Unauthenticated extends SidecarError {}
class PermissionDenied extends SidecarError {}
class ResourceExhausted extends SidecarError {}
class DeadlineExceeded extends SidecarError {}

const BY_CODE = {
  [grpc.status.INVALID_ARGUMENT]: InvalidArgument,
  [grpc.status.NOT_FOUND]: NotFound,
  [grpc.status.OUT_OF_RANGE]: RangeNotSatisfiable,
  [grpc.status.UNAVAILABLE]: Unavailable,
  [grpc.status.UNAUTHENTICATED]: Unauthenticated,
  [grpc.status.PERMISSION_DENIED]: PermissionDenied,
  [grpc.status.RESOURCE_EXHAUSTED]: ResourceExhausted,
  [grpc.status.DEADLINE_EXCEEDED]: DeadlineExceeded,
};
const BY_REASON = { stream_not_found: StreamNotFound, basin_not_found: BasinNotFound };

/** The typed error for a grpc-js ServiceError (`{ code, details, metadata }`). */
function toSidecarError(err) {
  if (err instanceof SidecarError || err.code === undefined) return err;
  const trailers = {};
  const info = { message: err.details || err.message, reason: undefined, metadata: {}, retryAfterMs: undefined, field: undefined, trailers };
  const md = err.metadata ? err.metadata.getMap() : {};
  for (const [key, value] of Object.entries(md)) {
    if (key === 'grpc-status-details-bin') {
      const status = Status.decode(value);
      info.message = status.message || info.message;
      for (const any of status.details) {
        const type = DETAIL_TYPES[any.type_url];
        if (!type) continue;
        const detail = type.toObject(type.decode(any.value), { longs: Number });
        if (any.type_url.endsWith('ErrorInfo')) {
          info.reason = detail.reason;
          info.metadata = detail.metadata || {};
        } else if (any.type_url.endsWith('RetryInfo')) {
          const d = detail.retry_delay || {};
          info.retryAfterMs = (d.seconds || 0) * 1000 + Math.floor((d.nanos || 0) / 1e6);
        } else if (detail.field_violations && detail.field_violations.length) {
          info.field = detail.field_violations[0].field;
        }
      }
    } else {
      trailers[key] = Buffer.isBuffer(value) ? value.toString('base64') : value;
    }
  }
  let Cls = BY_CODE[err.code] || SidecarError;
  if (Cls === NotFound) Cls = BY_REASON[info.reason] || NotFound;
  return new Cls(err, info);
}

// Builds a ReadRequest / ReadSessionRequest from
// { seqNum | timestamp | tailOffset, count, bytes, until, clamp, wait }.
function readRequest(basin, stream, opts = {}) {
  const req = { basin: basin || '', stream };
  const starts = STARTS.filter((k) => opts[k] !== undefined);
  if (starts.length > 1) throw new TypeError(`give at most one start, not ${starts.join(' and ')}`);
  if (opts.seqNum !== undefined) req.seq_num = String(opts.seqNum);
  if (opts.timestamp !== undefined) req.timestamp = String(opts.timestamp);
  if (opts.tailOffset !== undefined) req.tail_offset = String(opts.tailOffset);
  for (const k of ['count', 'bytes', 'until']) if (opts[k] !== undefined) req[k] = String(opts[k]);
  if (opts.clamp) req.clamp = true;
  if (opts.wait !== undefined) req.wait = opts.wait;
  if (opts.ignoreCommandRecords) req.ignore_command_records = true;
  return req;
}

const ENCRYPTION_KEY_HEADER = 's2-encryption-key';

/**
 * An encrypted stream's key as `s2-encryption-key` carries it (standard padded base64): a
 * Uint8Array (Buffer) is the 32 raw bytes and is encoded here, a string is that base64 already.
 * Length and alphabet are the sidecar's to check (INVALID_ARGUMENT, naming no key); only what
 * gRPC cannot carry is refused here, as grpc-js would put the value in its error. No error
 * shows the value.
 */
function encodeKey(key) {
  if (key instanceof Uint8Array) return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
  if (typeof key !== 'string') {
    const type = key === null ? 'null' : (key.constructor && key.constructor.name) || typeof key;
    throw new TypeError(`encryptionKey must be a Uint8Array (Buffer) or a base64 string, not ${type}`);
  }
  if (!/^[ -~]*$/.test(key)) {
    throw new TypeError('encryptionKey as a string must be base64 text (printable ASCII); pass the raw key as a Buffer');
  }
  return key;
}

/** `promise`, rejecting with our AbortError (not Node's own) when `signal` ends it. */
async function abortable(promise, signal) {
  try {
    return await promise;
  } catch (err) {
    if (signal && signal.aborted) throw new AbortError(signal);
    throw err;
  }
}

function batchOf(msg) {
  return { records: msg.records, tail: msg.tail || null };
}

function sessionBatchOf(msg) {
  return { ...batchOf(msg), caught_up: Boolean(msg.caught_up) };
}

// grpc-js waits up to 2 minutes between reconnects by default; a sidecar restart takes seconds.
const CHANNEL_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': DEFAULT_RETRY.baseDelayMs,
  'grpc.max_reconnect_backoff_ms': DEFAULT_RETRY.maxDelayMs,
};

// Statuses a call gets without the sidecar having answered it (connecting failed or never
// finished); any other status is the sidecar's answer.
const NOT_AN_ANSWER = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]);

class S2SidecarClient {
  #encryptionKey;
  #metadata;
  #waitingMetadata;

  /**
   * @param {string} [target] "host:port" or "unix:/path/to.sock"; default: env S2_SIDECAR_ADDRESS,
   *   else 127.0.0.1:50051
   * @param {object} [options]
   * @param {string} [options.basin] empty uses the sidecar's default basin
   * @param {string} [options.token] the sidecar's app token (S2_SIDECAR_APP_TOKEN), sent as
   *   `authorization: Bearer <token>`
   * @param {number} [options.timeoutMs] deadline for read / checkTail (plus any `wait`), retries included
   * @param {object} [options.retry] `{ maxAttempts, baseDelayMs, maxDelayMs, onRetry }`, see client.d.ts
   * @param {Uint8Array|string} [options.encryptionKey] the key of encrypted streams, sent as
   *   `s2-encryption-key` with every read and readSession (and each resume): the 32 raw bytes, or
   *   their base64. A call's own `encryptionKey` wins.
   */
  constructor(target, { basin = '', token, timeoutMs = 30000, retry = {}, encryptionKey } = {}) {
    this.basin = basin;
    this.timeoutMs = timeoutMs;
    const given = Object.entries(retry).filter(([, value]) => value !== undefined);
    this.retry = { ...DEFAULT_RETRY, ...Object.fromEntries(given) };
    if (!(this.retry.maxAttempts >= 1)) throw new RangeError('retry.maxAttempts must be at least 1');
    // A private field: console.log and util.inspect show a client's properties, never this.
    this.#encryptionKey = encryptionKey === undefined ? undefined : encodeKey(encryptionKey);
    // Private too: they carry the app token (console.log of a client must not print it).
    this.#metadata = new grpc.Metadata();
    if (token) this.#metadata.set('authorization', `Bearer ${token}`);
    // Until the sidecar first answers, calls wait for the channel to connect (gRPC's
    // waitForReady) instead of failing fast with UNAVAILABLE: an app that starts before its
    // sidecar waits for it (within the call's deadline; a session waits as long as it takes).
    this.#waitingMetadata = this.#metadata.clone();
    this.#waitingMetadata.setOptions({ waitForReady: true });
    this._answered = false;
    this.target = target || process.env.S2_SIDECAR_ADDRESS || '127.0.0.1:50051';
    this.stub = new StreamService(this.target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  /**
   * Resolves once the channel to the sidecar is READY (connecting if it is idle); rejects with
   * an Error naming the target and the timeout after `timeoutMs` (default: the client's
   * `timeoutMs`). For an app's start, before its first call.
   */
  waitForReady(timeoutMs = this.timeoutMs) {
    return new Promise((resolve, reject) => {
      this.stub.waitForReady(Date.now() + timeoutMs, (err) => {
        if (!err) resolve();
        else reject(new Error(`s2-sidecar at ${this.target} is not ready after ${timeoutMs} ms (${err.message})`));
      });
    });
  }

  /**
   * The call metadata: with waitForReady until the sidecar has answered once, and `key` (encoded,
   * see `_keyOf`) as `s2-encryption-key` when given.
   */
  _metadata(key) {
    const md = this._answered ? this.#metadata : this.#waitingMetadata;
    if (key === undefined) return md;
    const keyed = md.clone(); // keeps waitForReady
    keyed.set(ENCRYPTION_KEY_HEADER, key);
    return keyed;
  }

  /** The key for a read or session: the call's own `encryptionKey`, else the client's. */
  _keyOf(encryptionKey) {
    return encryptionKey === undefined ? this.#encryptionKey : encodeKey(encryptionKey);
  }

  /** Notes that `err` (a SidecarError) came from the sidecar, not from a failure to reach it. */
  _noteAnswer(err) {
    if (!NOT_AN_ANSWER.has(err.grpcCode)) this._answered = true;
  }

  close() {
    this.stub.close();
  }

  /**
   * After failure number `attempt` of a call: the milliseconds to wait before trying again, or
   * undefined when `err` is final (not retryable, or the attempts are spent).
   */
  _retryDelay(err, attempt, maxAttempts) {
    if (attempt >= maxAttempts || !isRetryable(err)) return undefined;
    const delayMs = retryDelayMs(attempt, err.retryAfterMs, this.retry);
    if (this.retry.onRetry) this.retry.onRetry(err, attempt, delayMs);
    return delayMs;
  }

  _call(method, req, deadline, key, signal) {
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) {
        reject(new AbortError(signal));
        return;
      }
      const onAbort = () => call.cancel(); // the callback below then rejects with an AbortError
      const call = this.stub[method](req, this._metadata(key), { deadline }, (err, resp) => {
        if (signal) signal.removeEventListener('abort', onAbort);
        if (signal && signal.aborted) {
          reject(new AbortError(signal));
          return;
        }
        if (!err) {
          this._answered = true;
          resolve(resp);
          return;
        }
        const error = toSidecarError(err);
        this._noteAnswer(error);
        reject(error);
      });
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A unary call, retried while its deadline (`call.timeoutMs`, else the client's, plus `extraMs`)
   * leaves room for another try; `call.signal` ends it (and its waits) with an AbortError.
   */
  async _unary(method, req, { extraMs = 0, key, timeoutMs = this.timeoutMs, signal } = {}) {
    const deadline = Date.now() + timeoutMs + extraMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this._call(method, req, new Date(deadline), key, signal);
      } catch (err) {
        if (err instanceof AbortError) throw err;
        const delayMs = this._retryDelay(err, attempt, this.retry.maxAttempts);
        if (delayMs === undefined || Date.now() + delayMs >= deadline) throw err;
        await abortable(sleep(delayMs, undefined, { signal }), signal);
      }
    }
  }

  /**
   * One batch: `{ records: [{ seq_num, timestamp, headers, body }], tail }`. No start means the
   * tail, as the proto says (a read there without `wait` is RangeNotSatisfiable: pass a start,
   * e.g. `seqNum: 0`, or `wait`).
   * `opts.encryptionKey` (Uint8Array or base64 string) replaces the client's for this call.
   * `opts.ignoreCommandRecords` leaves command records (fence, trim) out; they still count toward
   * `count` and `bytes`, as in S2's SDKs. `opts.timeoutMs` replaces the client's deadline for this
   * call; `opts.signal` (an AbortSignal) cancels it, rejecting with an AbortError.
   */
  async read(stream, opts = {}) {
    const { encryptionKey, timeoutMs, signal, ...read } = opts;
    const key = this._keyOf(encryptionKey);
    const req = readRequest(this.basin, stream, read);
    try {
      return batchOf(await this._unary('Read', req, { extraMs: (read.wait || 0) * 1000, key, timeoutMs, signal }));
    } catch (err) {
      if (err instanceof RangeNotSatisfiable && !STARTS.some((k) => read[k] !== undefined) && read.wait === undefined) {
        err.message += ' (read with no start reads at the tail, as the proto says: pass a start, e.g. { seqNum: 0 } ' +
          'to read from the first record, or set wait)';
      }
      throw err;
    }
  }

  /**
   * `{ seq_num, timestamp }`: the next seq_num and the last record's timestamp.
   * `opts.maxStalenessMs`: how old (ms) a tail the sidecar may answer from its cache (0 asks S2
   * unless a live session vouches for it); unset: the sidecar's default (1 s). `opts.timeoutMs`
   * and `opts.signal` as for `read`.
   */
  async checkTail(stream, { maxStalenessMs, timeoutMs, signal } = {}) {
    const req = { basin: this.basin, stream };
    if (maxStalenessMs !== undefined) req.max_staleness_ms = maxStalenessMs;
    const resp = await this._unary('CheckTail', req, { timeoutMs, signal });
    return resp.tail;
  }

  /**
   * An async iterator of batches from a start (none: the tail, following new records only). Without a stop (count, bytes,
   * until) it follows for ever; `break` out of the loop to end it (the call is cancelled).
   * Heartbeats (no records, `tail` set) are skipped unless `opts.heartbeats`.
   *
   * A broken session is reopened from the next record, each record delivered once, in order,
   * until `retry.maxAttempts` attempts in a row fail without progress; the last error is then
   * thrown with `nextSeqNum` set. `opts.resume: false` throws the first failure instead.
   * `opts.encryptionKey` replaces the client's for this session, every resume included.
   * `opts.ignoreCommandRecords` leaves command records (fence, trim) out; with a `count` or
   * `bytes` it throws a TypeError at once (the records left out count toward the limit but are
   * never delivered, so a resume could not reduce it exactly).
   * `opts.signal` (an AbortSignal) ends the session: the call is cancelled and the loop throws an
   * AbortError. Sessions have no deadline (`AbortSignal.timeout(ms)` gives them one).
   * The session's `caughtUp()` is what the last message said (S2's SDKs' `is_caught_up()`),
   * hidden heartbeats included; false after a resume until a message says otherwise.
   */
  readSession(stream, opts = {}) {
    if (opts.ignoreCommandRecords && (Number(opts.count || 0) > 0 || Number(opts.bytes || 0) > 0)) {
      throw new TypeError(
        'readSession: ignoreCommandRecords with a count or bytes limit cannot resume exactly (the records ' +
          'left out count toward the limit but are never delivered): leave the limit to the app ' +
          '(break out of the loop), or drop ignoreCommandRecords');
    }
    const state = { caughtUp: false };
    const session = this.#session(stream, opts, state);
    session.caughtUp = () => state.caughtUp;
    return session;
  }

  async *#session(stream, opts, state) {
    const { heartbeats = false, resume = true, encryptionKey, signal, ...read } = opts;
    const key = this._keyOf(encryptionKey);
    const cursor = new SessionCursor(readRequest(this.basin, stream, read));
    const maxAttempts = resume ? this.retry.maxAttempts : 1;
    for (let attempt = 1; ; attempt++) {
      if (signal && signal.aborted) throw new AbortError(signal);
      const call = this.stub.ReadSession(cursor.request(), this._metadata(key));
      const onAbort = () => call.cancel(); // the loop below then throws an AbortError
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const msg of call) {
          this._answered = true;
          // Track the position before handing the batch over: once yielded, it was delivered.
          if (cursor.advance(msg)) attempt = 1;
          state.caughtUp = Boolean(msg.caught_up); // hidden heartbeats too
          if (msg.records.length || heartbeats) yield sessionBatchOf(msg);
        }
        return; // the server ended the session: a stop was reached
      } catch (e) {
        state.caughtUp = false; // a resume starts behind, until a message says otherwise
        if (signal && signal.aborted) throw new AbortError(signal);
        const err = toSidecarError(e);
        if (!(err instanceof SidecarError)) throw err; // not the call's failure
        this._noteAnswer(err);
        if (cursor.done) return; // it broke after the last record asked for (count or bytes)
        if (cursor.nextSeqNum !== undefined) err.nextSeqNum = cursor.nextSeqNum;
        const delayMs = this._retryDelay(err, attempt, maxAttempts);
        if (delayMs === undefined) throw err;
        await abortable(sleep(delayMs, undefined, { signal }), signal);
      } finally {
        if (signal) signal.removeEventListener('abort', onAbort);
        call.cancel();
      }
    }
  }
}

module.exports = {
  S2SidecarClient,
  SidecarError,
  InvalidArgument,
  NotFound,
  StreamNotFound,
  BasinNotFound,
  RangeNotSatisfiable,
  Unavailable,
  AbortError,
  Unauthenticated,
  PermissionDenied,
  ResourceExhausted,
  DeadlineExceeded,
  toSidecarError,
};
