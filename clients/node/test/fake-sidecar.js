'use strict';
// A scripted StreamService on loopback for the session-loop tests: each call runs the next step
// of its method's script, and every request is kept (decoded with no defaults, so a field shows
// only if the client set it) for the test to compare.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO = path.resolve(__dirname, '..', '..', '..', 'proto', 's2sidecar', 'v1', 'stream.proto');
const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, bytes: Buffer, defaults: false, oneofs: false });
const { StreamService } = grpc.loadPackageDefinition(definition).s2sidecar.v1;

// Just enough of google.rpc to write the details the sidecar sends (built independently of the
// client's decoder, so the tests check it).
const rpc = protobuf.Root.fromJSON({
  nested: {
    Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
    Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
    Status: { fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } } },
    ErrorInfo: { fields: { reason: { type: 'string', id: 1 }, domain: { type: 'string', id: 2 }, metadata: { keyType: 'string', type: 'string', id: 3 } } },
    RetryInfo: { fields: { retry_delay: { type: 'Duration', id: 1 } } },
  },
});

function any(name, value) {
  const type = rpc.lookupType(name);
  return { type_url: `type.googleapis.com/google.rpc.${name}`, value: type.encode(type.fromObject(value)).finish() };
}

/**
 * A gRPC error as the sidecar sends it: `reason` becomes an ErrorInfo, `retryAfterMs` a
 * RetryInfo, `trailers` plain trailing metadata.
 */
function failure(code, message, { reason, retryAfterMs, trailers = {} } = {}) {
  const details = [];
  if (reason) details.push(any('ErrorInfo', { reason, domain: 's2.dev' }));
  if (retryAfterMs !== undefined) details.push(any('RetryInfo', { retry_delay: { seconds: 0, nanos: retryAfterMs * 1e6 } }));
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(trailers)) metadata.set(k, v);
  const Status = rpc.lookupType('Status');
  metadata.set('grpc-status-details-bin', Buffer.from(Status.encode(Status.fromObject({ code, message, details })).finish()));
  return { code, details: message, metadata };
}

function record(seqNum, body, headers = []) {
  return {
    seq_num: String(seqNum),
    timestamp: '1700000000000',
    headers: headers.map(([name, value]) => ({ name: Buffer.from(name), value: Buffer.from(value) })),
    body: Buffer.from(body),
  };
}

/**
 * Starts a fake sidecar. `script` maps a method name to its steps, one per call, in order:
 * ReadSession steps are `(call) => void` (write, then `call.end()` or `call.emit('error', ...)`);
 * Read and CheckTail steps are `(request) => response` or `{ error }`, or undefined (no answer).
 * Resolves to `{ address, requests, keys, close }`; `requests[method]` lists the requests received,
 * `keys[method]` each one's `s2-encryption-key` metadata (undefined when it had none).
 * `port` 0 (the default) picks a free one.
 */
async function startFake(script, { port: wanted = 0 } = {}) {
  const requests = { Read: [], ReadSession: [], CheckTail: [] };
  const keys = { Read: [], ReadSession: [], CheckTail: [] };
  const received = (method, call) => {
    requests[method].push(call.request);
    keys[method].push(call.metadata.get('s2-encryption-key')[0]);
  };
  const next = (method) => {
    const step = (script[method] || [])[requests[method].length - 1];
    if (!step) throw new Error(`unscripted ${method} call #${requests[method].length}`);
    return step;
  };
  const unary = (method) => (call, callback) => {
    received(method, call);
    const out = next(method)(call.request);
    if (out === undefined) return; // a step that never answers (the client cancels or times out)
    if (out.error) callback(out.error);
    else callback(null, out);
  };
  const server = new grpc.Server();
  server.addService(StreamService.service, {
    Read: unary('Read'),
    CheckTail: unary('CheckTail'),
    ReadSession: (call) => {
      received('ReadSession', call);
      next('ReadSession')(call);
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${wanted}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, requests, keys, close: () => server.forceShutdown() };
}

module.exports = { startFake, failure, record, status: grpc.status };
