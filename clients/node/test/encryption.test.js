'use strict';
// Encrypted streams' keys (docs/encryption.md) against the scripted fake sidecar: which
// `s2-encryption-key` each call sends (the client's, a call's, on every resume of a session, none
// for checkTail), and that no error, log or inspect of the client shows a key.

const test = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { startFake, failure, record, status } = require('./fake-sidecar');
const { S2SidecarClient } = require('../src/client');

const RAW = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const KEY = RAW.toString('base64');
const OTHER = Buffer.from(Array.from({ length: 32 }, (_, i) => i + 1)).toString('base64');
const TINY = { baseDelayMs: 1, maxDelayMs: 2 };

const unavailable = () => failure(status.UNAVAILABLE, 'sidecar draining', { reason: 'draining', retryAfterMs: 5 });
const tail = () => ({ tail: { seq_num: '2', timestamp: '1' } });
const batch = () => ({ records: [record(0, 'a')] });

test('the client key goes with every read and every session attempt; a call key wins; checkTail sends none', async () => {
  const fake = await startFake({
    Read: [() => ({ error: unavailable() }), batch, batch],
    ReadSession: [
      (call) => { call.write({ records: [record(0, 'a')] }); call.emit('error', unavailable()); },
      (call) => { call.write({ records: [record(1, 'b')] }); call.end(); },
      (call) => call.end(),
    ],
    CheckTail: [tail],
  });
  const client = new S2SidecarClient(fake.address, { encryptionKey: RAW, retry: TINY });
  try {
    await client.read('s'); // retried once: both attempts keyed
    await client.read('s', { encryptionKey: OTHER });
    const seen = [];
    for await (const b of client.readSession('s', { seqNum: 0, count: 2 })) seen.push(...b.records.map((r) => r.seq_num));
    assert.deepEqual(seen, ['0', '1']);
    for await (const b of client.readSession('s', { seqNum: 0, encryptionKey: Uint8Array.from(RAW) })) assert.fail(b);
    await client.checkTail('s');
    assert.deepEqual(fake.keys.Read, [KEY, KEY, OTHER]);
    assert.deepEqual(fake.keys.ReadSession, [KEY, KEY, KEY]);
    assert.deepEqual(fake.keys.CheckTail, [undefined]);
    assert.ok(!util.inspect(client, { depth: 10, showHidden: true }).includes(KEY));
    assert.ok(!JSON.stringify(Object.keys(client)).includes('ncryption'));
  } finally {
    client.close();
    fake.close();
  }
});

test('without a client key, only calls given one send it', async () => {
  const fake = await startFake({ Read: [batch, batch] });
  const client = new S2SidecarClient(fake.address);
  try {
    await client.read('s');
    await client.read('s', { encryptionKey: KEY });
    assert.deepEqual(fake.keys.Read, [undefined, KEY]);
  } finally {
    client.close();
    fake.close();
  }
});

test('a key gRPC cannot carry, or of another type, is a TypeError that does not show it', async () => {
  const secret = `${KEY.slice(0, -1)}é`;
  assert.throws(() => new S2SidecarClient('127.0.0.1:1', { encryptionKey: secret }), (e) =>
    e instanceof TypeError && /printable ASCII/.test(e.message) && !e.message.includes(KEY.slice(0, -1)));
  assert.throws(() => new S2SidecarClient('127.0.0.1:1', { encryptionKey: 42 }), /Uint8Array \(Buffer\) or a base64 string, not Number/);
  const client = new S2SidecarClient('127.0.0.1:1');
  try {
    await assert.rejects(client.read('s', { encryptionKey: secret }), (e) => e instanceof TypeError && !e.message.includes(KEY.slice(0, -1)));
    await assert.rejects(client.readSession('s', { encryptionKey: [1] }).next(), /not Array/);
  } finally {
    client.close();
  }
});

test('the app token is never shown by inspecting a client', () => {
  const client = new S2SidecarClient('127.0.0.1:1', { token: 'app-token-secret-123' });
  try {
    assert.ok(!util.inspect(client, { depth: 10, showHidden: true }).includes('app-token-secret-123'));
    assert.ok(!JSON.stringify(client, (k, v) => (k === 'stub' ? undefined : v)).includes('app-token-secret-123'));
  } finally {
    client.close();
  }
});
