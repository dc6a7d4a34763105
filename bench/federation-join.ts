/**
 * `node dist/bench/federation-join.js [--members N]` (part of `npm run
 * bench:federation`): the time for an Atrium user to join a Synapse room
 * with 1,000 members (issue 5).
 *
 * Set-up: Synapse (tools/test-servers/synapse.ts) and Atrium (embedded, TLS
 * federation with the test CA). A Synapse user creates a public room; the
 * 1,000 members come from a synthetic third server (a real Ed25519 key served
 * over HTTPS on 127.0.0.1, as in federation-inbound.ts) that joins its own
 * users through make_join/send_join (`omit_members=true`, so Synapse need not
 * send the growing member list back each time), a few at a time. That takes
 * far less than registering 1,000 Synapse users through the shared-secret
 * admin API; the set-up time is reported too.
 *
 * Measured: an Atrium user's POST /join/{roomId}?server_name=<synapse>, from
 * the request to its answer, and to the room being in /sync's `join`
 * section (polled with timeout=0). Every loop is bounded. Results go to
 * BENCHMARKS.md.
 */
import { createServer, type Server } from 'node:https';
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { buildServerKeys, generateSigningKey } from '@atrium/matrix';
import { createTestCa, startSynapse, type SynapseServer, type TestCa } from '@atrium/test-servers';
import { startTestServer, type TestServer } from '../e2e/support/servers';
import { register, sync } from './client/http';
import { writeBenchmarkSection, type BenchResult } from './report';
import { joinThroughFederation } from './support/synthetic-server';

const DEFAULT_MEMBERS = 1000;
/** Joins in flight at once (Synapse serialises a room's events anyway). */
const JOIN_CONCURRENCY = 4;
const SYNC_DEADLINE_MS = 300_000;

interface Origin {
  name: string;
  key: ReturnType<typeof generateSigningKey>;
  server: Server;
}

/** The synthetic server: serves its keys, accepts (and ignores) the transactions Synapse sends it. */
async function startOrigin(ca: TestCa): Promise<Origin> {
  const cert = ca.issue(['127.0.0.1']);
  const key = generateSigningKey('bench');
  const origin: Origin = { name: '', key, server: undefined as unknown as Server };
  origin.server = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
    req.resume();
    res.setHeader('Content-Type', 'application/json');
    if (req.url === '/_matrix/key/v2/server') {
      res.writeHead(200);
      res.end(JSON.stringify(buildServerKeys({ serverName: origin.name, signingKeys: [key], validUntilTs: Date.now() + 24 * 3600_000 })));
    } else if (req.method === 'PUT' && req.url?.startsWith('/_matrix/federation/v1/send/')) {
      res.writeHead(200);
      res.end('{"pdus":{}}');
    } else {
      res.writeHead(404);
      res.end('{"errcode":"M_NOT_FOUND","error":"nothing here"}');
    }
  });
  await new Promise<void>((resolve) => origin.server.listen(0, '127.0.0.1', resolve));
  origin.name = `127.0.0.1:${(origin.server.address() as AddressInfo).port}`;
  return origin;
}

/** One synthetic user joins through make_join/send_join. */
async function joinMember(synapse: SynapseServer, ca: TestCa, origin: Origin, roomId: string, n: number): Promise<void> {
  await joinThroughFederation(synapse, ca, origin, roomId, `@member${n}:${origin.name}`, { omitMembers: true });
}

async function synapseApi(synapse: SynapseServer, token: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${synapse.clientUrl}/_matrix/client/v3${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`Synapse ${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--members');
  const members = arg >= 0 ? Number(process.argv[arg + 1]) : DEFAULT_MEMBERS;
  const ca = createTestCa();
  const origin = await startOrigin(ca);
  const synapse = await startSynapse({ ca });
  let atrium: TestServer | undefined;
  try {
    atrium = await startTestServer('embedded', { federationTls: ca });
    const loadBefore = loadavg()[0].toFixed(2);
    const owner = await synapse.registerUser(`owner${Date.now()}`, 'bench-owner-pw');
    const roomId = (await synapseApi(synapse, owner.accessToken, 'POST', '/createRoom', { preset: 'public_chat', name: 'Big room' }))['room_id'] as string;

    // Set-up: the synthetic server's users join, JOIN_CONCURRENCY at a time.
    const setupStart = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < members) await joinMember(synapse, ca, origin, roomId, next++);
    };
    await Promise.all(Array.from({ length: JOIN_CONCURRENCY }, worker));
    const setupSeconds = (performance.now() - setupStart) / 1000;
    const joined = (await synapseApi(synapse, owner.accessToken, 'GET', `/rooms/${encodeURIComponent(roomId)}/joined_members`))['joined'] as Record<string, unknown>;
    const memberCount = Object.keys(joined).length;

    // The measurement: an Atrium user joins over federation.
    const user = await register(atrium.baseUrl, `joiner${Date.now()}`);
    const first = await sync(atrium.baseUrl, user, { timeout: '0' });
    const loadAtJoin = loadavg()[0].toFixed(2);
    const t0 = performance.now();
    const res = await fetch(`${atrium.baseUrl}/_matrix/client/v3/join/${encodeURIComponent(roomId)}?server_name=${encodeURIComponent(synapse.serverName)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.accessToken}` },
      body: '{}',
    });
    const joinText = await res.text();
    const answerMs = performance.now() - t0;
    if (!res.ok) throw new Error(`Atrium /join: ${res.status} ${joinText.slice(0, 300)}`);
    let since = first.body.next_batch;
    let syncMs = Number.NaN;
    while (performance.now() - t0 < SYNC_DEADLINE_MS) {
      const { body } = await sync(atrium.baseUrl, user, { timeout: '0', since });
      if (body.rooms?.join?.[roomId]) {
        syncMs = performance.now() - t0;
        break;
      }
      since = body.next_batch;
    }
    const results: BenchResult[] = [
      { name: `set-up: ${members} users of a synthetic server join a Synapse room (make_join/send_join, ${JOIN_CONCURRENCY} at a time)`, value: setupSeconds, unit: 's', note: `${memberCount} joined members on Synapse afterwards; load average ${loadBefore}` },
      { name: `embedded: Atrium user joins the Synapse room with ${memberCount} members, /join request to answer`, value: answerMs, unit: 'ms', note: `load average ${loadAtJoin}` },
      { name: `embedded: the same join, request to the room in /sync's join section`, value: syncMs, unit: 'ms', note: Number.isNaN(syncMs) ? `not seen within ${SYNC_DEADLINE_MS / 1000} s` : '' },
    ];
    console.log(writeBenchmarkSection('Federation: joining a Synapse room with 1,000 members', 'npm run bench:federation (bench/federation-join.ts)', results));
  } finally {
    await atrium?.stop();
    await synapse.stop();
    await new Promise<void>((resolve) => origin.server.close(() => resolve()));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
