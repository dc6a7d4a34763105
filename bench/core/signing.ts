/**
 * Ed25519 and hashing on a typical PDU: an m.room.message of room version 10
 * with a short body, three auth events and one prev event, about 1 KB signed.
 *
 * - sign: signPdu (content hash, redaction, canonical JSON, Ed25519 sign);
 * - verify: verifyPduSignatures (redaction, canonical JSON, Base64, key lookup
 *   through the KeyObject cache, Ed25519 verify);
 * - ceiling: node:crypto verify of the same canonical bytes with a KeyObject
 *   built once: what verification costs with no Matrix work at all;
 * - hashes: contentHash + referenceHash of the event;
 * - parsing: parseStrictJson (duplicate keys, v6+ number rules) of the signed
 *   PDU's JSON text beside JSON.parse, since it runs on every request body.
 *
 * Each figure runs for about 1.5 s (bounded in count too) after a warm-up.
 */
import { verify } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  contentHash,
  decodeBase64,
  generateSigningKey,
  parseStrictJson,
  redactEvent,
  referenceHash,
  signedBytes,
  signPdu,
  verifyPduSignatures,
  type Pdu,
} from '@atrium/matrix';
import type { BenchResult } from '../report';

const RUN_MS = 1500;
const MAX_ITERATIONS = 2_000_000;
const WARM_UP = 300;

/** Operations per second of `op`, run for RUN_MS (or MAX_ITERATIONS) after a warm-up. */
function opsPerSecond(op: () => unknown): number {
  for (let i = 0; i < WARM_UP; i++) op();
  let count = 0;
  const start = performance.now();
  let elapsed = 0;
  while (count < MAX_ITERATIONS) {
    // Check the clock every 64 operations to keep its cost out of the figure.
    for (let i = 0; i < 64; i++) op();
    count += 64;
    elapsed = performance.now() - start;
    if (elapsed >= RUN_MS) break;
  }
  return (count / elapsed) * 1000;
}

function typicalPdu(): Pdu {
  return {
    room_id: '!OGEhHVWSdvArJzumhm:matrix.org',
    sender: '@alice:example.org',
    type: 'm.room.message',
    content: {
      body: 'Hello everyone! Has anyone tried the new build? It fixes the sync issue we saw yesterday, I think.',
      msgtype: 'm.text',
      format: 'org.matrix.custom.html',
      formatted_body: '<p>Hello everyone! Has anyone tried the <b>new build</b>? It fixes the sync issue we saw yesterday, I think.</p>',
      'm.mentions': {},
    },
    origin_server_ts: 1_718_000_000_000,
    depth: 12_345,
    prev_events: ['$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg'],
    auth_events: [
      '$acR1l0raoZnm60CBwAVgqbZqoO_mYU81xysh1u7XcJk',
      '$CD66HAED5npg6074c6pDtLKalHjVfYb2q4Q3LZgrW6o',
      '$Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ',
    ],
    hashes: { sha256: '' },
    signatures: {},
    unsigned: { age_ts: 1_718_000_000_000 },
  };
}

export async function benchSigning(): Promise<BenchResult[]> {
  const version = '10';
  const key = generateSigningKey('bench');
  const pdu = typicalPdu();
  const signed = signPdu(pdu, version, 'example.org', key);
  const lookup = (server: string, keyId: string) =>
    server === 'example.org' && keyId === key.keyId ? { key: key.publicKeyBase64 } : undefined;
  if (!verifyPduSignatures(signed, version, lookup).ok) throw new Error('benchmark PDU does not verify');

  const bytes = signedBytes(redactEvent(signed, version));
  const signature = decodeBase64(signed.signatures['example.org'][key.keyId]);
  const publicKey = key.publicKey;
  if (!verify(null, bytes, publicKey, signature)) throw new Error('raw verify failed');
  const size = Buffer.byteLength(JSON.stringify(signed));

  const signRate = opsPerSecond(() => signPdu(pdu, version, 'example.org', key));
  const verifyRate = opsPerSecond(() => verifyPduSignatures(signed, version, lookup));
  const ceiling = opsPerSecond(() => verify(null, bytes, publicKey, signature));
  const hashRate = opsPerSecond(() => {
    contentHash(signed, version);
    referenceHash(signed, version);
  });
  const text = JSON.stringify(signed);
  const parseRate = opsPerSecond(() => parseStrictJson(text, { strict: true }));
  const jsonParseRate = opsPerSecond(() => JSON.parse(text));

  return [
    { name: 'signPdu (typical PDU)', value: signRate, unit: 'ops/s', note: `room v${version} m.room.message, ${size} bytes signed` },
    {
      name: 'verifyPduSignatures (typical PDU)',
      value: verifyRate,
      unit: 'ops/s',
      note: `${(ceiling / verifyRate).toFixed(2)}× below the raw ceiling (goal ≤ 1.5×)`,
    },
    { name: 'raw node:crypto Ed25519 verify, cached KeyObject (ceiling)', value: ceiling, unit: 'ops/s', note: `${bytes.length} canonical bytes` },
    { name: 'content hash + reference hash', value: hashRate, unit: 'events/s' },
    {
      name: 'parseStrictJson (typical PDU)',
      value: parseRate,
      unit: 'ops/s',
      note: `JSON.parse: ${Math.round(jsonParseRate).toLocaleString('en-US')} ops/s (no duplicate-key or number checks)`,
    },
  ];
}
