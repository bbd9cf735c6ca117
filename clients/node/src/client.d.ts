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
}

export class S2SidecarClient {
  constructor(target?: string, options?: { basin?: string; token?: string; timeoutMs?: number });
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
}
export class InvalidArgument extends SidecarError {}
export class NotFound extends SidecarError {}
export class StreamNotFound extends NotFound {}
export class BasinNotFound extends NotFound {}
export class RangeNotSatisfiable extends SidecarError { readonly tail: StreamPosition }
export class Unavailable extends SidecarError { readonly nextSeqNum: U64 | undefined }
export class Unauthenticated extends SidecarError {}
export class PermissionDenied extends SidecarError {}
export class ResourceExhausted extends SidecarError {}
export class DeadlineExceeded extends SidecarError {}
export function toSidecarError(err: unknown): unknown;
