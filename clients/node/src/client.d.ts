// Types for src/client.js, for TypeScript users:
//   import { S2SidecarClient, StreamNotFound } from '@s2-sidecar/client';
// Checked by `npm run typecheck` (test/types.test-d.ts uses every declaration below).
/// <reference types="node" />

/** uint64 values arrive as decimal strings; pass numbers, bigints or strings. */
export type U64 = string;
export type U64Input = number | bigint | string;

export interface StreamPosition { seq_num: U64; timestamp: U64 }
export interface Header { name: Buffer; value: Buffer }
export interface SequencedRecord { seq_num: U64; timestamp: U64; headers: Header[]; body: Buffer }
export interface ReadBatch { records: SequencedRecord[]; tail: StreamPosition | null }
/**
 * A session's batch. `caught_up`: with it every record before the tail was delivered (or left
 * out by `ignoreCommandRecords`); true on every heartbeat.
 */
export interface SessionBatch extends ReadBatch { caught_up: boolean }
/** A `readSession`: an async generator of batches (`return()` or `break` cancels it). */
export interface ReadSession extends AsyncGenerator<SessionBatch, void, undefined> {
  /**
   * Whether the last message (a hidden heartbeat included) said the session is caught up to the
   * tail, as S2's SDKs' `is_caught_up()`; false at the start and after a resume until one says so.
   */
  caughtUp(): boolean;
}

export interface ReadOptions {
  /**
   * At most one start; none means the tail (`tailOffset: 0`), as the proto says, for `read` and
   * `readSession` alike. A `read` at the tail without `wait` is RangeNotSatisfiable.
   */
  seqNum?: U64Input;
  timestamp?: U64Input;
  tailOffset?: U64Input;
  count?: U64Input;
  bytes?: U64Input;
  /** Exclusive timestamp (ms). */
  until?: U64Input;
  clamp?: boolean;
  /** Seconds. */
  wait?: number;
  /** This call's key for an encrypted stream, instead of the client's (see `ClientOptions`). */
  encryptionKey?: EncryptionKey;
  /**
   * Leave command records (fence, trim: one header with an empty name) out. They still count
   * toward `count` and `bytes`, as in S2's SDKs; `readSession` refuses it with either (TypeError).
   */
  ignoreCommandRecords?: boolean;
  /**
   * Cancels the call (a session: the call and its resumes); it then rejects / throws an
   * `AbortError`.
   */
  signal?: AbortSignal;
}
/** Options of one `read`. */
export interface UnaryReadOptions extends ReadOptions {
  /** This call's deadline (plus its `wait`), retries included, instead of the client's `timeoutMs`. */
  timeoutMs?: number;
}
export interface CheckTailOptions {
  /**
   * How old (ms) a tail the sidecar may answer from its cache; 0 asks S2 unless a live session
   * vouches for the tail. Unset: the sidecar's default (`--tail-max-staleness`, 1 s).
   */
  maxStalenessMs?: number;
  /** This call's deadline, retries included, instead of the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Cancels the call; it then rejects with an `AbortError`. */
  signal?: AbortSignal;
}
export interface SessionOptions extends ReadOptions {
  /** Yield heartbeats (no records, `tail` set) instead of skipping them. */
  heartbeats?: boolean;
  /**
   * Reopen a broken session where it stood (default true). false: the first failure is thrown,
   * as `retry: { maxAttempts: 1 }` would.
   */
  resume?: boolean;
}

/** How calls are retried (clients/RESUME.md); every field has a default. */
export interface RetryOptions {
  /**
   * Attempts in a row without progress before the last error is thrown (default 60, about a
   * minute). Records or a heartbeat reset a session's count; 1 turns retries off.
   */
  maxAttempts?: number;
  /**
   * Backoff: failure n waits base = min(baseDelayMs * 2^(n-1), maxDelayMs), plus up to as much
   * again at random; a longer RetryInfo delay from the server wins. Defaults 100 and 1000.
   */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called before each retry's wait, e.g. to log it; `attempt` counts failures from 1. */
  onRetry?: (error: SidecarError, attempt: number, delayMs: number) => void;
}

/**
 * An encrypted stream's key: the 32 raw bytes (a Buffer or any Uint8Array; the client
 * base64-encodes them), or their standard padded base64 as S2 takes it in `s2-encryption-key`.
 */
export type EncryptionKey = Uint8Array | string;

export interface ClientOptions {
  /** Empty (the default) uses the sidecar's default basin. */
  basin?: string;
  /** The sidecar's app token (S2_SIDECAR_APP_TOKEN), sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Deadline of `read` (plus its `wait`) and `checkTail`, retries included. Default 30000. */
  timeoutMs?: number;
  retry?: RetryOptions;
  /**
   * The key of encrypted streams, sent as `s2-encryption-key` with every `read` and `readSession`
   * (and each resume of a session); a call's own `encryptionKey` wins. Never logged nor shown.
   */
  encryptionKey?: EncryptionKey;
}

export class S2SidecarClient {
  /** `target`: "host:port" or "unix:/path"; default env S2_SIDECAR_ADDRESS, else "127.0.0.1:50051". */
  constructor(target?: string, options?: ClientOptions);
  /** The address this client connects to (after the defaults above). */
  readonly target: string;
  readonly basin: string;
  readonly timeoutMs: number;
  /**
   * Resolves once the sidecar accepts connections; rejects with an Error naming the target and
   * the timeout after `timeoutMs` (default: the client's `timeoutMs`). Optional: until the
   * sidecar first answers, every call waits for the connection (within its deadline) anyway.
   */
  waitForReady(timeoutMs?: number): Promise<void>;
  read(stream: string, opts?: UnaryReadOptions): Promise<ReadBatch>;
  readSession(stream: string, opts?: SessionOptions): ReadSession;
  checkTail(stream: string, opts?: CheckTailOptions): Promise<StreamPosition>;
  close(): void;
}

/** The gRPC status that failed a call, as grpc-js reports it. */
export interface GrpcStatus { code: number; details?: string }
/** What the error was decoded from (ErrorInfo, RetryInfo, BadRequest, trailers). */
export interface ErrorInfo {
  message: string;
  reason?: string;
  metadata: Record<string, string>;
  retryAfterMs?: number;
  field?: string;
  trailers: Record<string, string>;
}

/** Thrown by every call; made by the client (see `toSidecarError`), not by apps. */
export class SidecarError extends Error {
  protected constructor(status: GrpcStatus, info: ErrorInfo);
  /** gRPC status name, e.g. "NOT_FOUND". */
  code: string;
  grpcCode: number;
  /** S2's error code from ErrorInfo, e.g. "stream_not_found". */
  reason?: string;
  metadata: Record<string, string>;
  retryAfterMs?: number;
  /** The request field to change (BadRequest), for InvalidArgument. */
  field?: string;
  /** The sidecar's trailing metadata (binary values base64), e.g. `s2-next-seq-num`. */
  trailers: Record<string, string>;
  /**
   * Where to resume (pass as `seqNum`) after a session failed: the session's own position when it
   * knows it, else the sidecar's `s2-next-seq-num`, else undefined.
   */
  nextSeqNum: U64 | undefined;
}
export class InvalidArgument extends SidecarError {}
export class NotFound extends SidecarError {}
export class StreamNotFound extends NotFound {}
export class BasinNotFound extends NotFound {}
export class RangeNotSatisfiable extends SidecarError { readonly tail: StreamPosition }
export class Unavailable extends SidecarError {}
export class Unauthenticated extends SidecarError {}
export class PermissionDenied extends SidecarError {}
export class ResourceExhausted extends SidecarError {}
export class DeadlineExceeded extends SidecarError {}
/** A call ended by its `signal`, as Node's APIs reject: not a SidecarError. */
export class AbortError extends Error {
  constructor(signal?: AbortSignal);
  readonly name: 'AbortError';
  readonly code: 'ABORT_ERR';
  /** The signal's reason. */
  readonly cause: unknown;
}
/**
 * The typed error for a grpc-js ServiceError (anything with a `code`); anything else (and a
 * SidecarError) is returned as it is.
 */
export function toSidecarError<E extends { code: number }>(err: E): SidecarError;
export function toSidecarError<E>(err: E): E | SidecarError;
