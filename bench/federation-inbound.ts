/**
 * `npm run bench:federation` (embedded), or `node dist/bench/federation-inbound.js --mode
 * embedded|cluster|both` after `node scripts/build.mjs`: inbound PDUs per
 * second accepted through PUT /_matrix/federation/v1/send/{txnId} (issue 5),
 * against a server started exactly as the end-to-end suite starts it, with
 * federation over TLS (test CA).
 *
 * The origin is synthetic: a real Ed25519 key, its keys served over HTTPS on
 * 127.0.0.1 (so the server's KeyRing fetches them as from any server), signed
 * requests (X-Matrix) and signed PDUs. Its user joins local rooms through
 * make_join/send_join, then it sends transactions of 50 message PDUs, one
 * transaction at a time as a sender must ("wait and retry for a 200 OK
 * response before sending a transaction with a different txnId"):
 * - one room: every PDU of a transaction chained on the previous one;
 * - ten rooms: five PDUs per room in each transaction (rooms run in parallel
 *   in the room server).
 * Rate = PDUs accepted (no `error` in the result) / wall time of the sends.
 * Every loop is bounded. Results go to BENCHMARKS.md.
 */
import { createServer, type Server } from 'node:https';
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import {
  buildPdu,
  buildServerKeys,
  generateSigningKey,
  signPdu,
  toRoomEvent,
  type JsonObject,
  type Pdu,
  type RoomVersion,
} from '@atrium/matrix';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { startTestServer, type Mode, type TestServer } from '../e2e/support/servers';
import { createRoom, register } from './client/http';
import { writeBenchmarkSection, type BenchResult } from './report';
import { joinThroughFederation, signedFederationRequest } from './support/synthetic-server';

const PDUS_PER_TXN = 50;
const TXNS_ONE_ROOM = 40;
const ROOMS = 10;
const TXNS_MANY_ROOMS = 40;

interface Origin {
  name: string;
  key: ReturnType<typeof generateSigningKey>;
  server: Server;
}

async function startOrigin(ca: TestCa): Promise<Origin> {
  const cert = ca.issue(['127.0.0.1']);
  const key = generateSigningKey('bench');
  const origin: Origin = { name: '', key, server: undefined as unknown as Server };
  origin.server = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
    if (req.url === '/_matrix/key/v2/server') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(buildServerKeys({ serverName: origin.name, signingKeys: [key], validUntilTs: Date.now() + 24 * 3600_000 })));
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errcode":"M_NOT_FOUND","error":"nothing here"}');
    }
  });
  await new Promise<void>((resolve) => origin.server.listen(0, '127.0.0.1', resolve));
  origin.name = `127.0.0.1:${(origin.server.address() as AddressInfo).port}`;
  return origin;
}

/** One signed federation request from the origin to the server under test. */
function federation(server: TestServer, ca: TestCa, origin: Origin, method: 'GET' | 'PUT', uri: string, body?: JsonObject): Promise<Record<string, unknown>> {
  return signedFederationRequest(server, ca, origin, method, uri, body, 300_000);
}

/** The origin's view of one joined room: where its next PDU goes and what authorises it. */
interface RoomCursor {
  roomId: string;
  version: RoomVersion;
  prev: string;
  depth: number;
  auth: string[];
}

async function joinRoom(server: TestServer, ca: TestCa, origin: Origin, roomId: string): Promise<RoomCursor> {
  const { version, join, answer } = await joinThroughFederation(server, ca, origin, roomId, `@bench:${origin.name}`, { timeoutMs: 300_000 });
  // Messages are authorised by the create event (v1–v11), the power levels and the sender's join.
  const state = (answer['state'] as Pdu[]).map((p) => toRoomEvent(p, version));
  const auth = state.filter((e) => (e.type === 'm.room.create' && !version.roomIdFromCreateEvent) || e.type === 'm.room.power_levels').map((e) => e.event_id);
  return { roomId, version, prev: join.event_id, depth: join.depth, auth: [...auth, join.event_id] };
}

function nextMessage(origin: Origin, cursor: RoomCursor, n: number): Pdu {
  const pdu = signPdu(
    buildPdu(
      {
        room_id: cursor.roomId,
        sender: `@bench:${origin.name}`,
        type: 'm.room.message',
        content: { msgtype: 'm.text', body: `federated message ${n}` },
        origin_server_ts: Date.now(),
        depth: cursor.depth + 1,
        prev_events: [cursor.prev],
        auth_events: cursor.auth,
      },
      cursor.version,
    ),
    cursor.version,
    origin.name,
    origin.key,
  );
  cursor.prev = toRoomEvent(pdu, cursor.version).event_id;
  cursor.depth += 1;
  return pdu;
}

/** Sends `txns` transactions one after another; each holds PDUS_PER_TXN PDUs spread over `cursors`. */
async function sendLoad(server: TestServer, ca: TestCa, origin: Origin, cursors: RoomCursor[], txns: number, tag: string): Promise<{ rate: number; accepted: number; errors: number; p50: number }> {
  let accepted = 0;
  let errors = 0;
  let n = 0;
  const latencies: number[] = [];
  const started = performance.now();
  for (let t = 0; t < txns; t++) {
    const pdus: Pdu[] = [];
    for (let i = 0; i < PDUS_PER_TXN; i++) pdus.push(nextMessage(origin, cursors[i % cursors.length], n++));
    const t0 = performance.now();
    const answer = await federation(server, ca, origin, 'PUT', `/_matrix/federation/v1/send/${tag}-${t}`, {
      origin: origin.name,
      origin_server_ts: Date.now(),
      pdus: pdus as unknown as JsonObject[],
    });
    latencies.push(performance.now() - t0);
    for (const result of Object.values(answer['pdus'] as Record<string, { error?: string }>)) {
      if (result.error === undefined) accepted++;
      else errors++;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { rate: accepted / seconds, accepted, errors, p50: latencies[Math.floor(latencies.length / 2)] };
}

async function benchMode(mode: Mode): Promise<BenchResult[]> {
  const ca = createTestCa();
  const origin = await startOrigin(ca);
  const server = await startTestServer(mode, { federationTls: ca });
  try {
    const owner = await register(server.baseUrl, `owner${Date.now()}`);
    const results: BenchResult[] = [];
    const load = loadavg()[0].toFixed(2);

    const single = await joinRoom(server, ca, origin, await createRoom(server.baseUrl, owner, { preset: 'public_chat', room_version: '10' }));
    const one = await sendLoad(server, ca, origin, [single], TXNS_ONE_ROOM, `one-${Date.now()}`);
    results.push({ name: `${mode}: PDUs accepted through /send, one room (${TXNS_ONE_ROOM} transactions × ${PDUS_PER_TXN})`, value: one.rate, unit: 'PDUs/s', note: `${one.accepted} accepted, ${one.errors} errors; transaction p50 ${one.p50.toFixed(0)} ms; load average ${load}` });

    const cursors: RoomCursor[] = [];
    for (let i = 0; i < ROOMS; i++) cursors.push(await joinRoom(server, ca, origin, await createRoom(server.baseUrl, owner, { preset: 'public_chat', room_version: '10' })));
    const many = await sendLoad(server, ca, origin, cursors, TXNS_MANY_ROOMS, `many-${Date.now()}`);
    results.push({ name: `${mode}: PDUs accepted through /send, ${ROOMS} rooms (${TXNS_MANY_ROOMS} transactions × ${PDUS_PER_TXN}, ${PDUS_PER_TXN / ROOMS} per room)`, value: many.rate, unit: 'PDUs/s', note: `${many.accepted} accepted, ${many.errors} errors; transaction p50 ${many.p50.toFixed(0)} ms` });
    return results;
  } finally {
    await server.stop();
    await new Promise<void>((resolve) => origin.server.close(() => resolve()));
  }
}

async function main(): Promise<void> {
  // --mode embedded (the default), cluster, or both: the section holds the modes of one run.
  const arg = process.argv.indexOf('--mode');
  const value = arg >= 0 ? process.argv[arg + 1] : 'embedded';
  const modes: Mode[] = value === 'both' ? ['embedded', 'cluster'] : [value as Mode];
  const results: BenchResult[] = [];
  for (const mode of modes) {
    results.push(...(await benchMode(mode)));
    // Written after each mode, so a run cut short keeps what it measured.
    console.log(writeBenchmarkSection('Federation inbound (/send)', arg >= 0 ? `node dist/bench/federation-inbound.js --mode ${value}` : 'npm run bench:federation', results));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
