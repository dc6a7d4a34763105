/**
 * `npm run bench:e2ee-fanout [-- --mode embedded|cluster]`: the federation
 * traffic one device change causes for a user in a room with 50 remote
 * servers (issue 6), against a server started exactly as the end-to-end
 * suite starts it, with federation over TLS (test CA).
 *
 * The 50 remote servers are synthetic: each one a real Ed25519 key and a tiny
 * HTTPS server on 127.0.0.1 (certificate from the test CA) that serves its
 * keys (/_matrix/key/v2/server) and answers every PUT /send/{txnId} with 200,
 * recording the transaction and its EDUs. A user of each joins one room of a
 * local user through the real make_join/send_join. Then the local user
 * uploads new device keys once (POST /keys/upload: the server sends an
 * m.device_list_update to every server sharing a room, server-server-api
 * "Device Management"). Measured: transactions and EDUs each remote server
 * receives from the change until every one has the update (plus a settle
 * period, so duplicates or retries are counted), and the time from the upload
 * to the last server receiving it. Every wait is bounded. Results go to
 * BENCHMARKS.md.
 */
import { createServer, type Server } from 'node:https';
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { buildServerKeys, generateSigningKey, signJson, type JsonObject } from '@atrium/matrix';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { startTestServer, type Mode, type TestServer } from '../e2e/support/servers';
import { createRoom, register, type Session } from './client/http';
import { writeBenchmarkSection, type BenchResult } from './report';
import { joinThroughFederation } from './support/synthetic-server';

const REMOTE_SERVERS = 50;
const WAIT_MS = 120_000;
const SETTLE_MS = 3_000;

interface Remote {
  name: string;
  key: ReturnType<typeof generateSigningKey>;
  server: Server;
  /** Transactions received after `counting` was set: arrival time and EDU types. */
  transactions: { at: number; edus: { edu_type: string; content: JsonObject }[] }[];
}

let counting = false;

async function startRemote(ca: TestCa): Promise<Remote> {
  const cert = ca.issue(['127.0.0.1']);
  const key = generateSigningKey('bench');
  const remote: Remote = { name: '', key, server: undefined as unknown as Server, transactions: [] };
  remote.server = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/_matrix/key/v2/server') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(buildServerKeys({ serverName: remote.name, signingKeys: [key], validUntilTs: Date.now() + 24 * 3600_000 })));
      } else if (req.method === 'PUT' && req.url?.startsWith('/_matrix/federation/v1/send/')) {
        // Authentication of the sender is not what is measured: the transaction is taken as it comes.
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { edus?: { edu_type: string; content: JsonObject }[] };
        if (counting) remote.transactions.push({ at: performance.now(), edus: body.edus ?? [] });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"pdus":{}}');
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"errcode":"M_NOT_FOUND","error":"nothing here"}');
      }
    });
  });
  await new Promise<void>((resolve) => remote.server.listen(0, '127.0.0.1', resolve));
  remote.name = `127.0.0.1:${(remote.server.address() as AddressInfo).port}`;
  return remote;
}

/** The remote's user joins `roomId` through make_join/send_join (server-server-api "Joining Rooms"). */
async function joinRoom(server: TestServer, ca: TestCa, remote: Remote, roomId: string): Promise<void> {
  await joinThroughFederation(server, ca, remote, roomId, `@bench:${remote.name}`);
}

/** Uploads signed device keys for the session's device (keys.yaml): the device change. */
async function uploadDeviceKeys(base: string, session: Session & { deviceId: string }): Promise<void> {
  const key = generateSigningKey(session.deviceId);
  const deviceKeys = signJson(
    {
      user_id: session.userId,
      device_id: session.deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`ed25519:${session.deviceId}`]: key.publicKeyBase64, [`curve25519:${session.deviceId}`]: `curve${Date.now()}` },
    },
    session.userId,
    key,
  );
  const res = await fetch(`${base}/_matrix/client/v3/keys/upload`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${session.accessToken}` },
    body: JSON.stringify({ device_keys: deviceKeys }),
  });
  if (res.status !== 200) throw new Error(`/keys/upload: ${res.status} ${await res.text()}`);
}

async function whoami(base: string, session: Session): Promise<string> {
  const res = await fetch(`${base}/_matrix/client/v3/account/whoami`, { headers: { authorization: `Bearer ${session.accessToken}` } });
  return ((await res.json()) as { device_id: string }).device_id;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function benchMode(mode: Mode): Promise<BenchResult[]> {
  const ca = createTestCa();
  const remotes: Remote[] = [];
  for (let i = 0; i < REMOTE_SERVERS; i++) remotes.push(await startRemote(ca));
  const server = await startTestServer(mode, { federationTls: ca });
  try {
    const load = loadavg()[0].toFixed(2);
    const owner = await register(server.baseUrl, `fanout${Date.now()}`);
    const session = { ...owner, deviceId: await whoami(server.baseUrl, owner) };
    const roomId = await createRoom(server.baseUrl, owner, { preset: 'public_chat', room_version: '10' });
    const joinStarted = performance.now();
    for (const remote of remotes) await joinRoom(server, ca, remote, roomId);
    const joinSeconds = (performance.now() - joinStarted) / 1000;
    // Let the join PDUs drain to the remotes, so the counts below are the device change's traffic.
    await new Promise((r) => setTimeout(r, 10_000));

    counting = true;
    const started = performance.now();
    await uploadDeviceKeys(server.baseUrl, session);
    const hasUpdate = (r: Remote) => r.transactions.some((t) => t.edus.some((e) => e.edu_type === 'm.device_list_update' && e.content['user_id'] === owner.userId));
    const deadline = Date.now() + WAIT_MS;
    while (!remotes.every(hasUpdate) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const reached = remotes.filter(hasUpdate);
    const arrivals = reached.map((r) => r.transactions.find((t) => t.edus.some((e) => e.edu_type === 'm.device_list_update'))!.at - started).sort((a, b) => a - b);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    counting = false;

    const transactions = remotes.reduce((n, r) => n + r.transactions.length, 0);
    const edus = remotes.reduce((n, r) => n + r.transactions.reduce((m, t) => m + t.edus.length, 0), 0);
    const updates = remotes.reduce((n, r) => n + r.transactions.reduce((m, t) => m + t.edus.filter((e) => e.edu_type === 'm.device_list_update').length, 0), 0);
    const perServer = remotes.map((r) => r.transactions.length);
    return [
      { name: `${mode}: remote servers that received the m.device_list_update`, value: reached.length, unit: `of ${REMOTE_SERVERS}`, note: `one room, ${REMOTE_SERVERS} synthetic servers joined by make_join/send_join in ${joinSeconds.toFixed(1)} s; load average ${load} at start` },
      { name: `${mode}: transactions received after one device change`, value: transactions, unit: 'transactions', note: `per server min ${Math.min(...perServer)}, max ${Math.max(...perServer)} (counted until all had it + ${SETTLE_MS / 1000} s)` },
      { name: `${mode}: EDUs received after one device change`, value: edus, unit: 'EDUs', note: `${updates} m.device_list_update` },
      { name: `${mode}: time from /keys/upload to the last server receiving the update`, value: arrivals.length ? arrivals[arrivals.length - 1] : NaN, unit: 'ms', note: arrivals.length ? `first ${arrivals[0].toFixed(0)} ms, p50 ${percentile(arrivals, 50).toFixed(0)} ms` : 'none arrived' },
    ];
  } finally {
    await server.stop();
    await Promise.all(remotes.map((r) => new Promise<void>((resolve) => r.server.close(() => resolve()))));
  }
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--mode');
  const modes: Mode[] = arg >= 0 ? [process.argv[arg + 1] as Mode] : ['embedded'];
  for (const mode of modes) {
    const results = await benchMode(mode);
    console.log(writeBenchmarkSection(`E2EE device change fan-out to ${REMOTE_SERVERS} servers, ${mode} mode`, `npm run bench:e2ee-fanout${arg >= 0 ? ` -- --mode ${modes[0]}` : ''}`, results));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
