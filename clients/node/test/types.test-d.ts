// Type tests (`npm run typecheck`, never run): every public declaration of src/client.d.ts used
// the way a TypeScript app would, imported by the package's name through its `exports`. Lines
// under `// @ts-expect-error` must NOT compile: tsc fails if one of them does.

import {
  S2SidecarClient,
  SidecarError,
  InvalidArgument,
  NotFound,
  StreamNotFound,
  BasinNotFound,
  RangeNotSatisfiable,
  Unavailable,
  Unauthenticated,
  PermissionDenied,
  ResourceExhausted,
  DeadlineExceeded,
  AbortError,
  toSidecarError,
} from '@s2-sidecar/client';
import type {
  CheckTailOptions,
  ClientOptions,
  EncryptionKey,
  ReadBatch,
  ReadOptions,
  ReadSession,
  RetryOptions,
  SequencedRecord,
  SessionBatch,
  SessionOptions,
  StreamPosition,
  U64,
  UnaryReadOptions,
} from '@s2-sidecar/client';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

const retry: RetryOptions = {
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  onRetry: (error, attempt, delayMs) => console.warn(error.code, attempt, delayMs),
};
const options: ClientOptions = { basin: 'my-basin', token: 's3cret', timeoutMs: 5000, retry };

export async function app(): Promise<void> {
  const client = new S2SidecarClient('127.0.0.1:50051', options);
  new S2SidecarClient(); // every argument is optional
  new S2SidecarClient(undefined, { retry: { maxAttempts: 1 } });
  const target: string = client.target;
  const basin: string = client.basin;
  const timeoutMs: number = client.timeoutMs;
  console.log(target, basin, timeoutMs);

  await client.waitForReady();
  const ready: Promise<void> = client.waitForReady(10_000);
  await ready;

  const read: ReadOptions = { seqNum: 0, count: 100, until: 1700000008000n, clamp: true, wait: 5 };
  const batch: ReadBatch = await client.read('orders', read);
  await client.read('orders');
  await client.read('orders', { timestamp: '1700000005000', bytes: 1 << 20 });
  await client.read('orders', { tailOffset: 10 });
  for (const r of batch.records) {
    const record: SequencedRecord = r;
    const seq: U64 = record.seq_num;
    const body: Buffer = record.body;
    const headers: [string, string][] = record.headers.map((h) => [h.name.toString(), h.value.toString()]);
    console.log(seq, record.timestamp, body.toString('utf8'), headers);
  }
  const tail: StreamPosition | null = batch.tail;
  if (tail) console.log(tail.seq_num, tail.timestamp);

  const position: StreamPosition = await client.checkTail('orders');
  const tailOptions: CheckTailOptions = { maxStalenessMs: 0, timeoutMs: 1000, signal: AbortSignal.timeout(1000) };
  await client.checkTail('orders', tailOptions);
  const unaryRead: UnaryReadOptions = { seqNum: 0, timeoutMs: 5000, signal: new AbortController().signal };
  await client.read('orders', unaryRead);
  client.readSession('orders', { signal: AbortSignal.timeout(60000) });
  // @ts-expect-error sessions have no deadline: a signal (AbortSignal.timeout) ends them
  client.readSession('orders', { timeoutMs: 5000 });
  try {
    await client.read('orders', { signal: AbortSignal.abort() });
  } catch (e) {
    if (e instanceof AbortError) {
      const code: 'ABORT_ERR' = e.code;
      console.warn(code, e.cause);
    }
  }
  assertType<Equal<typeof position.seq_num, string>>();

  const session: SessionOptions = { tailOffset: 10, heartbeats: true, resume: false };
  for await (const b of client.readSession('orders', session)) {
    assertType<Equal<typeof b, SessionBatch>>();
    const caughtUp: boolean = b.caught_up;
    console.log(caughtUp);
    if (b.records.length === 0) console.log('heartbeat at', b.tail?.seq_num);
    break;
  }
  const iterator: AsyncGenerator<ReadBatch, void, undefined> = client.readSession('orders');
  await iterator.return();
  const follower: ReadSession = client.readSession('orders', { seqNum: 0, ignoreCommandRecords: true });
  const isCaughtUp: boolean = follower.caughtUp();
  console.log(isCaughtUp);
  await client.read('orders', { ignoreCommandRecords: true });

  const rawKey: EncryptionKey = Buffer.alloc(32); // the raw bytes, or their base64 as a string
  const sealed = new S2SidecarClient(undefined, { basin: 'sealed', encryptionKey: rawKey });
  await sealed.read('orders', { encryptionKey: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=' });
  await sealed.read('orders', { encryptionKey: new Uint8Array(32) });
  for await (const b of sealed.readSession('orders', { seqNum: 0, encryptionKey: rawKey })) console.log(b);

  try {
    await client.read('orders', { seqNum: 0 });
  } catch (err) {
    if (err instanceof StreamNotFound || err instanceof BasinNotFound) {
      const nf: NotFound = err;
      console.log(nf.reason, nf.message);
    } else if (err instanceof InvalidArgument) {
      const field: string | undefined = err.field;
      console.log(field);
    } else if (err instanceof RangeNotSatisfiable) {
      const t: StreamPosition = err.tail;
      console.log(t.seq_num);
    } else if (err instanceof Unavailable || err instanceof ResourceExhausted) {
      const after: number | undefined = err.retryAfterMs;
      const next: U64 | undefined = err.nextSeqNum;
      console.log(after, next);
    } else if (err instanceof Unauthenticated || err instanceof PermissionDenied || err instanceof DeadlineExceeded) {
      console.log(err.code);
    } else if (err instanceof SidecarError) {
      const code: string = err.code;
      const grpcCode: number = err.grpcCode;
      const trailers: Record<string, string> = err.trailers;
      const metadata: Record<string, string> = err.metadata;
      const base: Error = err;
      console.log(code, grpcCode, trailers['s2-next-seq-num'], metadata, base.name);
    }
  }

  const typed: SidecarError = toSidecarError({ code: 14, details: 'connection refused' });
  const other: TypeError | SidecarError = toSidecarError(new TypeError('not a call failure'));
  console.log(typed, other);
  client.close();
}

// Negative checks: each line below is a mistake the types must catch.
export async function mistakes(client: S2SidecarClient): Promise<void> {
  // @ts-expect-error the stream name is required
  await client.read();
  // @ts-expect-error the stream name is a string
  await client.checkTail(42);
  // @ts-expect-error options are camelCase (seqNum), not the proto's seq_num
  await client.read('orders', { seq_num: 0 });
  // @ts-expect-error wait is seconds, a number
  await client.read('orders', { wait: '5s' });
  // @ts-expect-error heartbeats belong to sessions, not to read
  await client.read('orders', { heartbeats: true });
  // @ts-expect-error clamp is a boolean
  client.readSession('orders', { clamp: 'yes' });
  // @ts-expect-error waitForReady takes milliseconds as a number
  await client.waitForReady('10s');
  // @ts-expect-error waitForReady resolves to nothing
  const ready: boolean = await client.waitForReady(100);
  // @ts-expect-error unknown client option
  new S2SidecarClient('127.0.0.1:50051', { timeout: 5 });
  // @ts-expect-error retry options are numbers
  new S2SidecarClient(undefined, { retry: { maxAttempts: 'many' } });
  // @ts-expect-error the target is read-only
  client.target = 'elsewhere';
  // @ts-expect-error the client makes its errors; apps do not construct them
  new StreamNotFound();
  // @ts-expect-error seq_num is a decimal string, not a number
  const seq: number = (await client.checkTail('orders')).seq_num;
  // @ts-expect-error bodies are Buffers
  const body: string = (await client.read('orders')).records[0].body;
  // @ts-expect-error a batch's tail may be null
  const tailSeq: string = (await client.read('orders')).tail.seq_num;
  // @ts-expect-error a key is bytes or a base64 string
  new S2SidecarClient(undefined, { encryptionKey: 42 });
  // @ts-expect-error a key is bytes or a base64 string
  await client.read('orders', { encryptionKey: [1, 2, 3] });
  // @ts-expect-error checkTail takes no key (S2 answers tails without one)
  await client.checkTail('orders', { encryptionKey: 'k' });
  // @ts-expect-error not exported
  const { DEFAULT_RETRY } = await import('@s2-sidecar/client');
  console.log(ready, seq, body, tailSeq, DEFAULT_RETRY);
}
