/**
 * `npm run bench:e2ee [-- --mode embedded|cluster]`: latency of POST
 * /keys/query and /keys/claim for 100 devices (issue 6), on one server and
 * across two servers federating over TLS (test CA), started exactly as the
 * end-to-end suite starts them.
 *
 * Server A holds one user with 100 devices, each with signed device keys and
 * 40 one-time keys. A client of A (local) and a client of B (remote: B asks
 * A over federation) then run, one request at a time:
 * - /keys/query for the user (all 100 devices): local; remote with no shared
 *   room (B asks A with /user/keys/query every time); remote with a shared
 *   room (B fetches the list once with /user/devices, then answers from its
 *   cache);
 * - /keys/claim of one signed_curve25519 key for each of the 100 devices in
 *   one request: local, then remote.
 * Every loop is bounded. Results go to BENCHMARKS.md.
 */
import { loadavg } from 'node:os';
import { generateSigningKey, signJson, type JsonObject } from '@atrium/matrix';
import { createTestCa } from '@atrium/test-servers';
import { startTestServer, type Mode, type TestServer } from '../e2e/support/servers';
import { createRoom, register, type Session } from './client/http';
import { writeBenchmarkSection, type BenchResult } from './report';

const DEVICES = 100;
const OTKS_PER_DEVICE = 40;
const QUERY_RUNS = 30;
const CLAIM_RUNS = 15;

interface Device extends Session {
  deviceId: string;
}

async function call<T = Record<string, unknown>>(base: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}/_matrix/client/v3${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Runs `once` `runs` times in a row; answers the sorted durations in ms. */
async function timed(runs: number, once: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await once(i);
    out.push(performance.now() - start);
  }
  return out.sort((x, y) => x - y);
}

function rows(results: BenchResult[], label: string, durations: number[], note: string): void {
  results.push({ name: `${label} — p50`, value: percentile(durations, 50), unit: 'ms', note });
  results.push({ name: `${label} — p99`, value: percentile(durations, 99), unit: 'ms', note: `max of ${durations.length} runs` });
}

/** The user's devices: the registration's and 99 more by password login, each with signed keys and one-time keys. */
async function deviceFarm(a: TestServer): Promise<{ owner: Session; devices: Device[] }> {
  const username = `farm${Date.now().toString(36)}`;
  const owner = await register(a.baseUrl, username);
  const devices: Device[] = [];
  const first = await call<{ device_id: string }>(a.baseUrl, owner.accessToken, 'GET', '/account/whoami');
  devices.push({ ...owner, deviceId: first.device_id });
  while (devices.length < DEVICES) {
    const login = await call<{ access_token: string; device_id: string; user_id: string }>(a.baseUrl, undefined, 'POST', '/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: owner.userId },
      password: `bench-${username}-pw`,
    });
    devices.push({ userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });
  }
  for (const device of devices) {
    const key = generateSigningKey(device.deviceId);
    const deviceKeys = signJson(
      {
        user_id: device.userId,
        device_id: device.deviceId,
        algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
        keys: { [`ed25519:${device.deviceId}`]: key.publicKeyBase64, [`curve25519:${device.deviceId}`]: `curve${device.deviceId}` },
      },
      device.userId,
      key,
    );
    const otks: Record<string, JsonObject> = {};
    for (let i = 0; i < OTKS_PER_DEVICE; i++) otks[`signed_curve25519:K${i}`] = signJson({ key: `otk${i}${device.deviceId}` }, device.userId, key);
    await call(a.baseUrl, device.accessToken, 'POST', '/keys/upload', { device_keys: deviceKeys, one_time_keys: otks });
  }
  return { owner, devices };
}

async function main(): Promise<void> {
  const modeArg = process.argv.indexOf('--mode');
  const mode = (modeArg > 0 ? process.argv[modeArg + 1] : 'embedded') as Mode;
  const load = loadavg()[0] ?? 0;
  const ca = createTestCa();
  const options = { federationTls: ca, env: { ATRIUM_RATE_LIMITS__ENABLED: 'false', ATRIUM_TELEMETRY__LOG_LEVEL: 'warn' } };
  const [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
  const results: BenchResult[] = [{ name: 'load average (1 min) when the run started', value: load, unit: 'runnable tasks', note: 'on 2 cores: above 2 means other work competed with the benchmark' }];
  const section = `E2EE keys for ${DEVICES} devices, ${mode} mode`;
  const command = `npm run bench:e2ee -- --mode ${mode}`;
  try {
    const { owner, devices } = await deviceFarm(a);
    const localUser = await register(a.baseUrl, `localasker${Date.now().toString(36)}`);
    const remoteUser = await register(b.baseUrl, `remoteasker${Date.now().toString(36)}`);
    const queryBody = { device_keys: { [owner.userId]: [] } };
    const check = (answer: { device_keys?: Record<string, Record<string, unknown>>; failures?: Record<string, unknown> }): void => {
      const n = Object.keys(answer.device_keys?.[owner.userId] ?? {}).length;
      if (n !== DEVICES || Object.keys(answer.failures ?? {}).length > 0) throw new Error(`query answered ${n} devices, failures ${JSON.stringify(answer.failures)}`);
    };

    rows(results, `${mode}: /keys/query, 100 devices, local`, await timed(QUERY_RUNS, async () => check(await call(a.baseUrl, localUser.accessToken, 'POST', '/keys/query', queryBody))), 'a user of A asks A');
    rows(
      results,
      `${mode}: /keys/query, 100 devices, remote, no shared room`,
      await timed(QUERY_RUNS, async () => check(await call(b.baseUrl, remoteUser.accessToken, 'POST', '/keys/query', queryBody))),
      'a user of B asks B; B asks A with /user/keys/query each time',
    );

    // A shared room: B tracks the user, fetches the list once (/user/devices) and answers from its cache after.
    const roomId = await createRoom(a.baseUrl, owner);
    await call(b.baseUrl, remoteUser.accessToken, 'POST', `/join/${encodeURIComponent(roomId)}?via=${encodeURIComponent(a.serverName)}`, {});
    const first = await timed(1, async () => check(await call(b.baseUrl, remoteUser.accessToken, 'POST', '/keys/query', queryBody)));
    results.push({ name: `${mode}: /keys/query, 100 devices, remote, shared room, first (fetch and cache)`, value: first[0] ?? NaN, unit: 'ms', note: 'B fetches the list with /user/devices' });
    rows(
      results,
      `${mode}: /keys/query, 100 devices, remote, shared room, cached`,
      await timed(QUERY_RUNS, async () => check(await call(b.baseUrl, remoteUser.accessToken, 'POST', '/keys/query', queryBody))),
      'B answers from its cache of the list',
    );

    const claimBody = { one_time_keys: { [owner.userId]: Object.fromEntries(devices.map((d) => [d.deviceId, 'signed_curve25519'])) } };
    const checkClaim = (answer: { one_time_keys?: Record<string, Record<string, unknown>> }): void => {
      const n = Object.keys(answer.one_time_keys?.[owner.userId] ?? {}).length;
      if (n !== DEVICES) throw new Error(`claim answered ${n} devices`);
    };
    rows(results, `${mode}: /keys/claim, 100 devices, local`, await timed(CLAIM_RUNS, async () => checkClaim(await call(a.baseUrl, localUser.accessToken, 'POST', '/keys/claim', claimBody))), 'one one-time key per device, one request');
    rows(
      results,
      `${mode}: /keys/claim, 100 devices, remote`,
      await timed(CLAIM_RUNS, async () => checkClaim(await call(b.baseUrl, remoteUser.accessToken, 'POST', '/keys/claim', claimBody))),
      'a user of B asks B; B asks A with /user/keys/claim',
    );
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  console.log(writeBenchmarkSection(section, command, results));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
