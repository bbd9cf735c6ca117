// Types for src/client.js, for TypeScript users (`import { S2SidecarClient } from '.../src/client'`).

/** uint64 values arrive as decimal strings; pass numbers, bigints or strings. */
export type U64 = string;
export type U64Input = number | bigint | string;

export interface StreamPosition { seq_num: U64; timestamp: U64 }
export interface Header { name: Buffer; value: Buffer }
export interface SequencedRecord { seq_num: U64; timestamp: U64; headers: Header[]; body: Buffer }
export interface ReadBatch { records: SequencedRecord[]; tail: StreamPosition | null }

export interface ReadOptions {
  /** At most one start; none means seq_num 0 for `read` and the tail for `readSession`. */
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

export interface ClientOptions {
  /** Empty (the default) uses the sidecar's default basin. */
  basin?: string;
  /** The sidecar's app token (S2_SIDECAR_APP_TOKEN), sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Deadline of `read` (plus its `wait`) and `checkTail`, retries included. Default 30000. */
  timeoutMs?: number;
  retry?: RetryOptions;
}

export class S2SidecarClient {
  /** `target`: "host:port" or "unix:/path"; default env S2_SIDECAR_ADDRESS, else "127.0.0.1:50051". */
  constructor(target?: string, options?: ClientOptions);
  read(stream: string, opts?: ReadOptions): Promise<ReadBatch>;
  readSession(stream: string, opts?: SessionOptions): AsyncGenerator<ReadBatch, void, undefined>;
  checkTail(stream: string): Promise<StreamPosition>;
  close(): void;
}

export class SidecarError extends Error {
  /** gRPC status name, e.g. "NOT_FOUND". */
  code: string;
  grpcCode: number;
  /** S2's error code from ErrorInfo, e.g. "stream_not_found". */
  reason?: string;
  metadata: Record<string, string>;
  retryAfterMs?: number;
  /** The request field to change (BadRequest), for InvalidArgument. */
  field?: string;
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
export function toSidecarError(err: unknown): unknown;
