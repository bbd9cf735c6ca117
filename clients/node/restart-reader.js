#!/usr/bin/env node
'use strict';
// The driver of the restart test (clients/RESUME.md, tests/clients/restarts.py): one auto-resuming
// ReadSession, printing `<seq_num> <body>` per record.
//
//   node restart-reader.js --addr 127.0.0.1:50051 --stream orders --start-seq-num 0 [--count 100000]
//                          [--encryption-key BASE64]   (the client's key, for an encrypted stream)
//
// Exits 0 when the session ends; on an error it cannot retry, prints `error <STATUS>: <message>`
// to stderr and exits 1. Resumes are logged to stderr.

const { parseArgs } = require('node:util');
const { once } = require('node:events');
const { S2SidecarClient, SidecarError } = require('./src/client');

async function main() {
  const { values } = parseArgs({
    options: {
      addr: { type: 'string' },
      stream: { type: 'string' },
      'start-seq-num': { type: 'string', default: '0' },
      count: { type: 'string' },
      'encryption-key': { type: 'string' },
    },
  });
  if (!values.stream) {
    console.error('usage: restart-reader.js [--addr ADDR] --stream STREAM [--start-seq-num N] [--count N] [--encryption-key KEY]');
    process.exitCode = 64;
    return;
  }
  const client = new S2SidecarClient(values.addr, {
    encryptionKey: values['encryption-key'],
    retry: {
      onRetry: (err, attempt, delayMs) =>
        console.error(`resume: ${err.code} (${err.message}); attempt ${attempt}, from ${err.nextSeqNum} in ${Math.round(delayMs)} ms`),
    },
  });
  try {
    const session = client.readSession(values.stream, { seqNum: values['start-seq-num'], count: values.count });
    for await (const batch of session) {
      const lines = batch.records.map((r) => `${r.seq_num} ${r.body.toString('latin1')}\n`).join('');
      // One write per batch; waiting for 'drain' keeps memory flat when the reader lags.
      if (!process.stdout.write(lines)) await once(process.stdout, 'drain');
    }
  } catch (err) {
    if (!(err instanceof SidecarError)) throw err;
    console.error(`error ${err.code}: ${err.message}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main();
