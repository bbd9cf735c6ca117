'use strict';
// The session loop and the unary retries of src/client.js against a scripted fake sidecar
// (test/fake-sidecar.js) on loopback: what is asked on each retry, and what the caller gets.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startFake, failure, record, status } = require('./fake-sidecar');
const { S2SidecarClient, Unavailable, StreamNotFound, SidecarError, RangeNotSatisfiable, AbortError } = require('../src/client');

const TINY = { baseDelayMs: 1, maxDelayMs: 2 }; // backoff that keeps the tests fast

/** Runs `body(client, fake)` against a fake with `script`, then closes both. */
async function withFake(script, clientOptions, body) {
  const fake = await startFake(script);
  const client = new S2SidecarClient(fake.address, clientOptions);
  try {
    await body(client, fake);
  } finally {
    client.close();
    fake.close();
  }
}

/** Every batch of a session (heartbeats included), or the error that ended it with the batches before. */
async function drain(session) {
  const batches = [];
  try {
    for await (const batch of session) batches.push(batch);
  } catch (error) {
    return { batches, error };
  }
  return { batches, error: undefined };
}

const seqs = (batches) => batches.flatMap((b) => b.records.map((r) => r.seq_num));

const unavailable = (trailers) => failure(status.UNAVAILABLE, 'sidecar draining', { reason: 'draining', retryAfterMs: 5, trailers });
const send = (...records) => (call) => call.write({ records });
const fail = (err) => (call) => call.emit('error', err);
const steps = (...parts) => (call) => parts.forEach((part) => part(call));
const end = (call) => call.end();

test('records then UNAVAILABLE: resumes after the last record with the rest of count and bytes', async () => {
  const withHeader = record(1, 'bb', [['key', 'value']]); // 8 + 2 + 8 + 2 = 20 metered bytes
  await withFake({
    ReadSession: [
      // the drain's s2-next-seq-num is stale on purpose: the client's own tracking wins
      steps(send(record(0, 'a'), withHeader), send(record(2, 'ccc')), fail(unavailable({ 's2-next-seq-num': '1' }))),
      steps(send(record(3, 'd'), record(4, 'e')), end),
    ],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { seqNum: 0, count: 5, bytes: 1000, until: 99, wait: 7 }));
    assert.equal(error, undefined);
    assert.deepEqual(seqs(batches), ['0', '1', '2', '3', '4']);
    assert.deepEqual(batches.flatMap((b) => b.records.map((r) => r.body.toString())), ['a', 'bb', 'ccc', 'd', 'e']);
    assert.deepEqual(fake.requests.ReadSession, [
      { basin: '', stream: 's', seq_num: '0', count: '5', bytes: '1000', until: '99', wait: 7 },
      { basin: '', stream: 's', seq_num: '3', count: '2', bytes: String(1000 - 9 - 20 - 11), until: '99', wait: 7 },
    ]);
  });
});

test('a follower that saw only a heartbeat resumes at its tail, then after each record', async () => {
  const heartbeat = { records: [], tail: { seq_num: '7', timestamp: '1700000000000' } };
  await withFake({
    ReadSession: [
      steps((call) => call.write(heartbeat), fail(unavailable())),
      steps(send(record(7, 'x')), fail(failure(status.INTERNAL, 'Received RST_STREAM with code 2'))),
      steps(send(record(8, 'y')), end),
    ],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { heartbeats: true }));
    assert.equal(error, undefined);
    assert.deepEqual(batches.map((b) => b.records.length), [0, 1, 1]);
    assert.deepEqual(batches[0].tail, heartbeat.tail);
    assert.deepEqual(seqs(batches), ['7', '8']);
    assert.deepEqual(fake.requests.ReadSession, [
      { basin: '', stream: 's' },
      { basin: '', stream: 's', seq_num: '7' },
      { basin: '', stream: 's', seq_num: '8' },
    ]);
  });
});

test('a failure before any progress asks for the same start again', async () => {
  await withFake({
    ReadSession: [fail(unavailable()), steps(send(record(10, 'a')), end)],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { tailOffset: 10, clamp: true }));
    assert.equal(error, undefined);
    assert.deepEqual(seqs(batches), ['10']);
    const first = { basin: '', stream: 's', tail_offset: '10', clamp: true };
    assert.deepEqual(fake.requests.ReadSession, [first, first]);
  });
});

test('a session whose count was delivered in full ends without another call', async () => {
  await withFake({
    ReadSession: [steps(send(record(0, 'a'), record(1, 'b')), fail(unavailable()))],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { seqNum: 0, count: 2 }));
    assert.equal(error, undefined);
    assert.deepEqual(seqs(batches), ['0', '1']);
    assert.equal(fake.requests.ReadSession.length, 1);
  });
});

test('u64 seq_nums past 2^53 resume exactly', async () => {
  const start = 18446744073709551610n;
  await withFake({
    ReadSession: [steps(send(record(start, 'a'), record(start + 1n, 'b')), fail(unavailable())), end],
  }, { retry: TINY }, async (client, fake) => {
    const { error } = await drain(client.readSession('s', { seqNum: start }));
    assert.equal(error, undefined);
    assert.deepEqual(fake.requests.ReadSession.map((r) => r.seq_num), [String(start), String(start + 2n)]);
  });
});

test('NOT_FOUND is thrown at once, typed, with where the session stood', async () => {
  await withFake({
    ReadSession: [fail(failure(status.NOT_FOUND, 'stream not found', { reason: 'stream_not_found' }))],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { seqNum: 5 }));
    assert.ok(error instanceof StreamNotFound, String(error));
    assert.equal(error.code, 'NOT_FOUND');
    assert.equal(error.nextSeqNum, '5');
    assert.deepEqual(batches, []);
    assert.equal(fake.requests.ReadSession.length, 1);
  });
});

test('a spent budget throws the last UNAVAILABLE with the client position; progress resets it', async () => {
  let retries = 0;
  await withFake({
    ReadSession: [
      fail(unavailable()), // attempt 1
      steps(send(record(3, 'a')), fail(unavailable())), // progress: counts from 1 again
      fail(unavailable()), // 2
      fail(unavailable({ 's2-next-seq-num': '0' })), // 3 of 3: thrown
    ],
  }, { retry: { ...TINY, maxAttempts: 3, onRetry: () => retries++ } }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { seqNum: 3 }));
    assert.ok(error instanceof Unavailable, String(error));
    assert.equal(error.nextSeqNum, '4'); // not the trailer's 0
    assert.equal(error.retryAfterMs, 5);
    assert.deepEqual(seqs(batches), ['3']);
    assert.deepEqual(fake.requests.ReadSession.map((r) => r.seq_num), ['3', '3', '4', '4']);
    assert.equal(retries, 3);
  });
});

test('resume: false throws the first failure', async () => {
  await withFake({
    ReadSession: [steps(send(record(0, 'a')), fail(unavailable()))],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { seqNum: 0, resume: false }));
    assert.ok(error instanceof Unavailable, String(error));
    assert.equal(error.nextSeqNum, '1');
    assert.deepEqual(seqs(batches), ['0']);
    assert.equal(fake.requests.ReadSession.length, 1);
  });
});

test('read and checkTail retry UNAVAILABLE with the same request', async () => {
  const tail = { seq_num: '20', timestamp: '1700000019000' };
  await withFake({
    Read: [() => ({ error: unavailable() }), () => ({ error: unavailable() }), () => ({ records: [record(0, 'a')] })],
    CheckTail: [() => ({ error: unavailable() }), () => ({ tail, age_ms: '0' })],
  }, { retry: TINY }, async (client, fake) => {
    const batch = await client.read('s', { seqNum: 0, count: 1 });
    assert.deepEqual(seqs([batch]), ['0']);
    assert.deepEqual(fake.requests.Read, Array(3).fill({ basin: '', stream: 's', seq_num: '0', count: '1' }));
    assert.deepEqual(await client.checkTail('s'), tail);
    assert.deepEqual(fake.requests.CheckTail, Array(2).fill({ basin: '', stream: 's' }));
  });
});

test('read throws a final error at once, and the last UNAVAILABLE once its deadline leaves no room', async () => {
  // RetryInfo asks for 600 ms: the first retry fits in the 1 s timeout, a second would not.
  const slow = () => ({ error: failure(status.UNAVAILABLE, 'upstream down', { retryAfterMs: 600 }) });
  await withFake({
    Read: [() => ({ error: failure(status.INVALID_ARGUMENT, 'bad count') }), slow, slow, slow],
  }, { timeoutMs: 1000, retry: TINY }, async (client, fake) => {
    await assert.rejects(client.read('s', { count: 5 }), (e) => e instanceof SidecarError && e.code === 'INVALID_ARGUMENT');
    assert.equal(fake.requests.Read.length, 1);
    await assert.rejects(client.read('s'), (e) => e instanceof Unavailable && e.message === 'upstream down');
    assert.equal(fake.requests.Read.length, 3);
  });
});

const sendCaughtUp = (...records) => (call) => call.write({ records, caught_up: true });
const heartbeat = (seqNum) => (call) => call.write({ records: [], tail: { seq_num: String(seqNum), timestamp: '0' }, caught_up: true });

test('caughtUp() is what the last message said, hidden heartbeats included, and false after a resume', async () => {
  await withFake({
    ReadSession: [
      steps(send(record(0, 'a')), sendCaughtUp(record(1, 'b')), fail(unavailable())),
      steps(send(record(2, 'c')), heartbeat(3), end),
    ],
  }, { retry: TINY }, async (client) => {
    const session = client.readSession('s', { seqNum: 0 });
    assert.equal(session.caughtUp(), false);
    const seen = [];
    for await (const batch of session) seen.push([batch.records[0].seq_num, batch.caught_up, session.caughtUp()]);
    assert.deepEqual(seen, [['0', false, false], ['1', true, true], ['2', false, false]]);
    assert.equal(session.caughtUp(), true); // the hidden heartbeat said so
  });
});

test('ignoreCommandRecords is sent with every resume and every read retry', async () => {
  await withFake({
    ReadSession: [steps(send(record(0, 'a')), fail(unavailable())), steps(send(record(2, 'c')), end)],
    Read: [() => ({ error: unavailable() }), () => ({ records: [record(0, 'a')] })],
  }, { retry: TINY }, async (client, fake) => {
    const { batches, error } = await drain(client.readSession('s', { seqNum: 0, ignoreCommandRecords: true }));
    assert.equal(error, undefined);
    assert.deepEqual(seqs(batches), ['0', '2']);
    assert.deepEqual(fake.requests.ReadSession, [
      { basin: '', stream: 's', seq_num: '0', ignore_command_records: true },
      { basin: '', stream: 's', seq_num: '1', ignore_command_records: true },
    ]);
    await client.read('s', { seqNum: 0, count: 2, ignoreCommandRecords: true });
    assert.deepEqual(fake.requests.Read, Array(2).fill({ basin: '', stream: 's', seq_num: '0', count: '2', ignore_command_records: true }));
  });
});

test('ignoreCommandRecords with a count or bytes limit is refused before any call', async () => {
  await withFake({}, { retry: TINY }, async (client, fake) => {
    for (const limit of [{ count: 3 }, { bytes: 100n }, { count: '1', bytes: 5 }]) {
      assert.throws(() => client.readSession('s', { seqNum: 0, ignoreCommandRecords: true, ...limit }),
        (e) => e instanceof TypeError && /leave the limit to the app/.test(e.message));
    }
    assert.equal(fake.requests.ReadSession.length, 0);
  });
});

test('with no options every call sends the stream alone: no start (the tail), no limit, wait, clamp or staleness', async () => {
  const tail = { seq_num: '3', timestamp: '0' };
  await withFake({
    Read: [() => ({ records: [] })],
    ReadSession: [end],
    CheckTail: [() => ({ tail })],
  }, {}, async (client, fake) => {
    assert.equal(client.timeoutMs, 30000);
    assert.equal(client.retry.maxAttempts, 60);
    await client.read('s');
    await drain(client.readSession('s'));
    await client.checkTail('s');
    assert.deepEqual(fake.requests, {
      Read: [{ basin: '', stream: 's' }],
      ReadSession: [{ basin: '', stream: 's' }],
      CheckTail: [{ basin: '', stream: 's' }],
    });
  });
});

test('checkTail sends maxStalenessMs; a read at the tail without wait says to pass a start', async () => {
  const tail = { seq_num: '3', timestamp: '0' };
  const atTail = () => ({ error: failure(status.OUT_OF_RANGE, 'start is the tail; set wait') });
  await withFake({ CheckTail: [() => ({ tail }), () => ({ tail })], Read: [atTail, atTail] }, {}, async (client, fake) => {
    await client.checkTail('s', { maxStalenessMs: 0 });
    await client.checkTail('s', { maxStalenessMs: 250 });
    assert.deepEqual(fake.requests.CheckTail.map((r) => r.max_staleness_ms), [0, 250]);
    await assert.rejects(client.read('s'), (e) => e instanceof RangeNotSatisfiable && /pass a start/.test(e.message));
    await assert.rejects(client.read('s', { seqNum: 3 }), (e) => e instanceof RangeNotSatisfiable && !/pass a start/.test(e.message));
  });
});

test('a signal cancels a read, a checkTail and a session with an AbortError; timeoutMs is per call', async () => {
  const never = () => undefined; // the fake never answers
  let sessionCall;
  await withFake({
    Read: [never, never],
    CheckTail: [never],
    ReadSession: [(call) => { sessionCall = call; call.write({ records: [record(0, 'a')] }); }],
  }, { retry: TINY }, async (client) => {
    const isAbort = (e) => e instanceof AbortError && e.name === 'AbortError' && e.code === 'ABORT_ERR';
    const controller = new AbortController();
    const read = client.read('s', { seqNum: 0, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    await assert.rejects(read, (e) => isAbort(e) && e.cause.message === 'shutting down');
    await assert.rejects(client.checkTail('s', { signal: AbortSignal.abort() }), isAbort);
    const started = Date.now();
    await assert.rejects(client.read('s', { seqNum: 0, timeoutMs: 100 }), (e) => e.code === 'DEADLINE_EXCEEDED');
    assert.ok(Date.now() - started < 5000);

    const follow = new AbortController();
    const seen = [];
    await assert.rejects(async () => {
      for await (const batch of client.readSession('s', { signal: follow.signal })) {
        seen.push(...batch.records.map((r) => r.seq_num));
        follow.abort();
      }
    }, isAbort);
    assert.deepEqual(seen, ['0']);
    for (let i = 0; i < 100 && !sessionCall.cancelled; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(sessionCall.cancelled, 'the sidecar saw the session cancelled');
  });
});
