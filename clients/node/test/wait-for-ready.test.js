'use strict';
// Waiting for the sidecar at start (src/client.js): `waitForReady(timeoutMs)`, and calls that wait
// for the first connection (gRPC's waitForReady) until the sidecar has answered once, then fail
// fast again (retries, not waiting, ride out later restarts). Retries are off in these tests, so
// only the waiting can make a call reach the sidecar.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { setTimeout: sleep } = require('node:timers/promises');
const { startFake, failure, status } = require('./fake-sidecar');
const { S2SidecarClient, StreamNotFound, Unavailable } = require('../src/client');

const NO_RETRY = { maxAttempts: 1 };
const TAIL = { seq_num: '20', timestamp: '1700000019000' };

/** A loopback port nothing listens on (bound, then released). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('waitForReady rejects after its timeout, naming the target', async () => {
  const port = await freePort();
  const client = new S2SidecarClient(`127.0.0.1:${port}`);
  try {
    const started = Date.now();
    await assert.rejects(client.waitForReady(300), (err) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, new RegExp(`^s2-sidecar at 127\\.0\\.0\\.1:${port} is not ready after 300 ms`));
      return true;
    });
    assert.ok(Date.now() - started < 5000);
  } finally {
    client.close();
  }
});

test('waitForReady resolves once a sidecar that starts later listens', async () => {
  const port = await freePort();
  const client = new S2SidecarClient(`127.0.0.1:${port}`);
  let fake;
  try {
    const ready = client.waitForReady(20000);
    await sleep(500);
    fake = await startFake({}, { port });
    await ready;
  } finally {
    client.close();
    if (fake) fake.close();
  }
});

test('the first call waits for a sidecar that starts later; an error answer counts as answered', async () => {
  const port = await freePort();
  const client = new S2SidecarClient(`127.0.0.1:${port}`, { retry: NO_RETRY, timeoutMs: 20000 });
  let fake;
  try {
    const call = client.checkTail('missing');
    await sleep(700);
    fake = await startFake({ CheckTail: [() => ({ error: failure(status.NOT_FOUND, 'no such stream', { reason: 'stream_not_found' }) })] }, { port });
    await assert.rejects(call, StreamNotFound);
    // answered: the next call fails fast instead of waiting for a connection
    fake.close();
    fake = undefined;
    await sleep(100);
    const started = Date.now();
    await assert.rejects(client.checkTail('missing'), Unavailable);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  } finally {
    client.close();
    if (fake) fake.close();
  }
});

test('a session waits for a sidecar that starts later', async () => {
  const port = await freePort();
  const client = new S2SidecarClient(`127.0.0.1:${port}`, { retry: NO_RETRY });
  let fake;
  try {
    const session = client.readSession('s', { seqNum: 0, heartbeats: true });
    const first = session.next();
    await sleep(700);
    fake = await startFake({ ReadSession: [(call) => { call.write({ records: [], tail: TAIL, caught_up: true }); call.end(); }] }, { port });
    assert.deepEqual((await first).value, { records: [], tail: TAIL, caught_up: true });
    await session.return();
  } finally {
    client.close();
    if (fake) fake.close();
  }
});

test('without waiting (answered before), a call to a stopped sidecar fails at once', async () => {
  const fake = await startFake({ CheckTail: [() => ({ tail: TAIL })] });
  const client = new S2SidecarClient(fake.address, { retry: NO_RETRY, timeoutMs: 20000 });
  try {
    assert.deepEqual(await client.checkTail('s'), TAIL);
    fake.close();
    await sleep(100);
    const started = Date.now();
    await assert.rejects(client.read('s'), Unavailable);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  } finally {
    client.close();
  }
});
