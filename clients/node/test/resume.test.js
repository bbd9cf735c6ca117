'use strict';
// The pure resume rules (src/resume.js): classification, backoff, metered size, and the cursor
// that rebuilds a broken session's request.

const test = require('node:test');
const assert = require('node:assert/strict');
const { status } = require('@grpc/grpc-js');
const { DEFAULT_RETRY, isRetryable, retryDelayMs, meteredBytes, SessionCursor } = require('../src/resume');

const err = (grpcCode, message = '', retryAfterMs = undefined) => ({ grpcCode, message, retryAfterMs });
const rec = (seqNum, body, headers = []) => ({
  seq_num: String(seqNum),
  timestamp: '0',
  headers: headers.map(([n, v]) => ({ name: Buffer.from(n), value: Buffer.from(v) })),
  body: Buffer.from(body),
});
const U64_MAX = '18446744073709551615';

test('retries UNAVAILABLE, throttling with a RetryInfo, and transport failures; nothing else', () => {
  assert.equal(isRetryable(err(status.UNAVAILABLE)), true);
  // the sidecar already retried S2 for the call: not again, whatever the code or RetryInfo
  assert.equal(isRetryable({ ...err(status.UNAVAILABLE), metadata: { attempts: '11' } }), false);
  assert.equal(isRetryable({ ...err(status.RESOURCE_EXHAUSTED, 'slow down', 250), metadata: { attempts: '11' } }), false);
  assert.equal(isRetryable(err(status.RESOURCE_EXHAUSTED, 'slow down', 250)), true);
  assert.equal(isRetryable(err(status.ABORTED, 'conflict', 0)), true);
  assert.equal(isRetryable(err(status.RESOURCE_EXHAUSTED, 'quota')), false);
  assert.equal(isRetryable(err(status.ABORTED, 'conflict')), false);
  assert.equal(isRetryable(err(status.INTERNAL, 'Received RST_STREAM with code 2')), true);
  assert.equal(isRetryable(err(status.UNKNOWN, 'Stream removed')), true);
  assert.equal(isRetryable(err(status.INTERNAL, 'read ECONNRESET: Connection reset by peer')), true);
  assert.equal(isRetryable(err(status.INTERNAL, 'bug')), false);
  for (const code of ['NOT_FOUND', 'INVALID_ARGUMENT', 'OUT_OF_RANGE', 'PERMISSION_DENIED', 'UNAUTHENTICATED',
    'FAILED_PRECONDITION', 'CANCELLED', 'DEADLINE_EXCEEDED']) {
    assert.equal(isRetryable(err(status[code], 'Connection reset')), false, code);
  }
  assert.equal(isRetryable(new Error('not a gRPC error')), false);
});

test('backoff doubles from 100 ms to at most 1 s, plus up to as much jitter', () => {
  const bases = [1, 2, 3, 4, 5, 6, 60].map((n) => retryDelayMs(n, undefined, DEFAULT_RETRY, () => 0));
  assert.deepEqual(bases, [100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(retryDelayMs(1, undefined, DEFAULT_RETRY, () => 0.5), 150);
  assert.equal(retryDelayMs(5, undefined, DEFAULT_RETRY, () => 0.999), 1999);
  assert.equal(retryDelayMs(2, undefined, { baseDelayMs: 1, maxDelayMs: 2 }, () => 0), 2);
});

test("a longer RetryInfo delay wins; a shorter one does not shorten the backoff", () => {
  assert.equal(retryDelayMs(1, 1000, DEFAULT_RETRY, () => 0), 1000);
  assert.equal(retryDelayMs(4, 10, DEFAULT_RETRY, () => 0), 800);
});

test('metered size is 8 + 2 per header + header names and values + body', () => {
  assert.equal(meteredBytes(rec(0, '')), 8);
  assert.equal(meteredBytes(rec(0, 'hello')), 13);
  assert.equal(meteredBytes(rec(0, 'hello', [['ab', 'cde'], ['', 'fence']])), 8 + 2 * 2 + 5 + 5 + 5);
});

test('before any progress the first request is asked again, start and all', () => {
  const first = { basin: '', stream: 's', tail_offset: '10', count: '5', until: '99', clamp: true, wait: 3 };
  const cursor = new SessionCursor(first);
  assert.equal(cursor.nextSeqNum, undefined);
  assert.equal(cursor.advance({ records: [], tail: null }), false); // an empty message says nothing
  assert.deepEqual(cursor.request(), first);
  assert.equal(cursor.done, false);
});

test('after records: from the next seq_num, count and bytes less what was delivered, the rest unchanged', () => {
  const cursor = new SessionCursor({ basin: 'b', stream: 's', timestamp: '1700', count: '10', bytes: '1000', until: '99', clamp: true, wait: 3 });
  assert.equal(cursor.advance({ records: [rec(4, 'abc'), rec(5, 'de', [['k', 'v']])], tail: null }), true);
  assert.equal(cursor.nextSeqNum, '6');
  assert.deepEqual(cursor.request(), {
    basin: 'b', stream: 's', seq_num: '6', count: '8', bytes: String(1000 - 11 - 14), until: '99', clamp: true, wait: 3,
  });
  cursor.advance({ records: [rec(6, 'f')], tail: { seq_num: '7', timestamp: '0' } }); // records win over the tail
  assert.deepEqual(cursor.request().seq_num, '7');
  assert.deepEqual(cursor.request().count, '7');
});

test('a heartbeat puts a follower at the tail, even before its first record', () => {
  const cursor = new SessionCursor({ basin: '', stream: 's', tail_offset: '0' });
  assert.equal(cursor.advance({ records: [], tail: { seq_num: '42', timestamp: '0' } }), true);
  assert.deepEqual(cursor.request(), { basin: '', stream: 's', seq_num: '42' });
  assert.equal(cursor.done, false); // no stop: follows for ever
  cursor.advance({ records: [rec(42, 'a')], tail: null });
  assert.equal(cursor.advance({ records: [], tail: { seq_num: '40', timestamp: '0' } }), true);
  assert.equal(cursor.request().seq_num, '43'); // a stale tail does not take it back
});

test('the session is done once count or bytes is used up', () => {
  const counted = new SessionCursor({ basin: '', stream: 's', seq_num: '0', count: '2' });
  counted.advance({ records: [rec(0, 'a')], tail: null });
  assert.equal(counted.done, false);
  counted.advance({ records: [rec(1, 'b')], tail: null });
  assert.equal(counted.done, true);
  const sized = new SessionCursor({ basin: '', stream: 's', seq_num: '0', bytes: '18' });
  sized.advance({ records: [rec(0, '12345')], tail: null });
  assert.equal(sized.done, false);
  assert.equal(sized.request().bytes, '5');
  sized.advance({ records: [rec(1, '')], tail: null }); // exactly what was left: 8 bytes, over by 3
  assert.equal(sized.done, true);
});

test('u64 positions and limits stay exact past 2^53', () => {
  const cursor = new SessionCursor({ basin: '', stream: 's', seq_num: '18446744073709551610', count: U64_MAX, bytes: U64_MAX });
  assert.equal(cursor.nextSeqNum, '18446744073709551610');
  cursor.advance({ records: [rec('18446744073709551610', 'a'), rec('18446744073709551611', 'b')], tail: null });
  assert.deepEqual(cursor.request(), {
    basin: '', stream: 's', seq_num: '18446744073709551612', count: '18446744073709551613', bytes: '18446744073709551597',
  });
  const follower = new SessionCursor({ basin: '', stream: 's', tail_offset: '0' });
  follower.advance({ records: [], tail: { seq_num: '9007199254740993', timestamp: '0' } }); // 2^53 + 1
  assert.equal(follower.request().seq_num, '9007199254740993');
});
