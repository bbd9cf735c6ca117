#!/usr/bin/env node
'use strict';
// Reads S2 streams through an s2-sidecar (same command line as the Go example):
//
//   node example.js -addr 127.0.0.1:50051 read   -stream orders -seq-num 0 -count 100
//   node example.js -addr 127.0.0.1:50051 read   -stream orders -timestamp 1700000005000 -until 1700000008000
//   node example.js -addr 127.0.0.1:50051 follow -stream orders -tail-offset 10 -n 11
//   node example.js -addr 127.0.0.1:50051 tail   -stream orders
//   node example.js -addr unix:/run/s2-sidecar.sock tail -stream orders
//
// -addr defaults to env S2_SIDECAR_ADDRESS, else 127.0.0.1:50051. -token (or env
// S2_SIDECAR_APP_TOKEN) sends the sidecar's app token. `follow` resumes across sidecar restarts.
// An encrypted stream's key (base64): -encryption-key is the client's (handed to it as the raw
// bytes), -call-encryption-key this call's (handed over as the base64 string), which wins.
// Prints one JSON object per line: a record, a tail, or an error (then exits with status 2).

const { S2SidecarClient, SidecarError, StreamNotFound } = require('./src/client');

function parse(argv) {
  const opts = {};
  let command;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('-')) opts[a.replace(/^-+/, '')] = argv[++i];
    else command = a;
  }
  return { command, opts };
}

function printRecord(r) {
  console.log(JSON.stringify({
    seq_num: r.seq_num,
    timestamp: r.timestamp,
    headers: r.headers.map((h) => [h.name.toString(), h.value.toString()]),
    body: r.body.toString(),
  }));
}

async function main() {
  const { command, opts } = parse(process.argv.slice(2));
  const token = opts.token || process.env.S2_SIDECAR_APP_TOKEN;
  const encryptionKey = opts['encryption-key'] === undefined ? undefined : Buffer.from(opts['encryption-key'], 'base64');
  const client = new S2SidecarClient(opts.addr, { basin: opts.basin, token, encryptionKey });
  const read = {
    encryptionKey: opts['call-encryption-key'],
    seqNum: opts['seq-num'],
    timestamp: opts.timestamp,
    tailOffset: opts['tail-offset'],
    count: opts.count,
    until: opts.until,
  };
  try {
    if (command === 'read') {
      const batch = await client.read(opts.stream, read);
      batch.records.forEach(printRecord);
    } else if (command === 'follow') {
      const n = Number(opts.n || 0);
      let seen = 0;
      for await (const batch of client.readSession(opts.stream, read)) {
        for (const r of batch.records) {
          printRecord(r);
          if (n && ++seen >= n) return; // leaving the loop cancels the session
        }
      }
    } else if (command === 'tail') {
      console.log(JSON.stringify({ tail: await client.checkTail(opts.stream) }));
    } else {
      console.error('usage: example.js [-addr ADDR] read|follow|tail -stream NAME [options]');
      process.exitCode = 64;
    }
  } catch (err) {
    if (!(err instanceof SidecarError)) throw err;
    const out = {
      error: grpcName(err.code), // e.g. NotFound
      type: err.constructor.name,
      reason: err.reason,
      message: err.message,
    };
    if (err.field) out.field = err.field;
    if (err.retryAfterMs !== undefined) out.retry_after_ms = err.retryAfterMs;
    if (err.tail) out.tail_seq_num = err.tail.seq_num;
    if (err instanceof StreamNotFound) out.hint = 'no such stream: check the name or create it';
    console.log(JSON.stringify(out));
    process.exitCode = 2;
  } finally {
    client.close();
  }
}

// "NOT_FOUND" -> "NotFound", the spelling grpcurl and grpc-go use.
function grpcName(code) {
  return code.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
}

main();
