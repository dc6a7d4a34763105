/**
 * `npm run bench:client [-- --mode embedded|cluster]`: the Client-Server API
 * under load, in each mode, against a server started exactly as the
 * end-to-end suite starts it (e2e/support/servers.ts):
 * - message sends by one sender alone (the latency of a send with no queue),
 *   by 50 concurrent senders into one room, and spread over 50 rooms
 *   (events/s, p50, p99 of each PUT /send);
 * - incremental /sync wake-up: a long-poll is waiting, another user sends,
 *   and the time from the send to the sync returning with the event;
 * - initial /sync of a user in 200 rooms of 50 events each, with lazy-loaded
 *   members and full state.
 * Every loop is bounded in count. Results go to BENCHMARKS.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join as joinPath } from 'node:path';
import { startTestServer, type Mode, type TestServer } from '../e2e/support/servers';
import { createRoom, join, register, sendMessage, sync, type Session } from './client/http';
import { INITIAL_SYNC_FILTER, measureWakeups, pool, seedRooms } from './client/scenarios';
import { writeBenchmarkSection, type BenchResult } from './report';

const SENDERS = 50;
const SOLO_SENDS = 200;
const SENDS_PER_SENDER = 20;
const WAKEUPS = 50;
const BIG_ROOMS = 200;
/** Messages per room of the initial-sync scenario (the 200 rooms × 50 events). */
const EVENTS_PER_BIG_ROOM = 50;
/** Set-up sends in flight at once. */
const SEED_CONCURRENCY = 20;
const INITIAL_SYNC_RUNS = 5;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function registerMany(base: string, prefix: string, n: number): Promise<Session[]> {
  const users: Session[] = new Array<Session>(n);
  await pool(n, 10, async (i) => {
    users[i] = await register(base, `${prefix}${i}`);
  });
  return users;
}

/** Each sender sends SENDS_PER_SENDER messages one after another into `roomFor(i)`; all senders at once. */
async function sendLoad(base: string, users: Session[], roomFor: (i: number) => string): Promise<{ rate: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    users.map(async (user, i) => {
      for (let k = 0; k < SENDS_PER_SENDER; k++) {
        const t0 = performance.now();
        await sendMessage(base, user, roomFor(i), `message ${k} from ${i}`);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function benchSends(server: TestServer, label: string): Promise<BenchResult[]> {
  const base = server.baseUrl;
  const users = await registerMany(base, `send${Date.now().toString(36)}u`, SENDERS);
  const solo = await createRoom(base, users[0], { preset: 'private_chat' });
  const soloLatencies: number[] = [];
  for (let k = 0; k < SOLO_SENDS; k++) {
    const t0 = performance.now();
    await sendMessage(base, users[0], solo, `solo ${k}`);
    soloLatencies.push(performance.now() - t0);
  }
  soloLatencies.sort((a, b) => a - b);

  const shared = await createRoom(base, users[0]);
  await pool(SENDERS - 1, 10, (i) => join(base, users[i + 1], shared));
  const oneRoom = await sendLoad(base, users, () => shared);

  const own: string[] = new Array<string>(SENDERS);
  await pool(SENDERS, 10, async (i) => {
    own[i] = await createRoom(base, users[i], { preset: 'private_chat' });
  });
  const manyRooms = await sendLoad(base, users, (i) => own[i]);

  const note = `${SENDERS} senders × ${SENDS_PER_SENDER} sequential PUT /send each`;
  return [
    { name: `${label}: send, one sender — p50`, value: percentile(soloLatencies, 50), unit: 'ms', note: `${SOLO_SENDS} sequential PUT /send, nothing else running` },
    { name: `${label}: send, one sender — p99`, value: percentile(soloLatencies, 99), unit: 'ms' },
    { name: `${label}: send, one room — throughput`, value: oneRoom.rate, unit: 'events/s', note },
    { name: `${label}: send, one room — p50`, value: oneRoom.p50, unit: 'ms' },
    { name: `${label}: send, one room — p99`, value: oneRoom.p99, unit: 'ms' },
    { name: `${label}: send, 50 rooms — throughput`, value: manyRooms.rate, unit: 'events/s', note },
    { name: `${label}: send, 50 rooms — p50`, value: manyRooms.p50, unit: 'ms' },
    { name: `${label}: send, 50 rooms — p99`, value: manyRooms.p99, unit: 'ms' },
  ];
}

async function benchWakeups(server: TestServer, label: string): Promise<BenchResult[]> {
  const base = server.baseUrl;
  const [reader, writer] = await registerMany(base, `wake${Date.now().toString(36)}u`, 2);
  const roomId = await createRoom(base, writer);
  await join(base, reader, roomId);
  const latencies = await measureWakeups(base, reader, writer, roomId, WAKEUPS);
  const note = `${WAKEUPS} sends, each to a waiting long-poll; from the start of PUT /send to the sync returning the event`;
  return [
    { name: `${label}: /sync wake-up — p50`, value: percentile(latencies, 50), unit: 'ms', note },
    { name: `${label}: /sync wake-up — p99`, value: percentile(latencies, 99), unit: 'ms' },
  ];
}

async function benchInitialSync(server: TestServer, label: string): Promise<BenchResult[]> {
  const base = server.baseUrl;
  const [user, other] = await registerMany(base, `init${Date.now().toString(36)}u`, 2);
  const perRoom = EVENTS_PER_BIG_ROOM;
  const { sendSeconds: seedSeconds } = await seedRooms(base, user, other, BIG_ROOMS, perRoom, SEED_CONCURRENCY);
  const initialSync = async (): Promise<{ ms: number; bytes: number }> => {
    const t0 = performance.now();
    const result = await sync(base, user, { filter: INITIAL_SYNC_FILTER, full_state: 'true', timeout: '0' });
    const ms = performance.now() - t0;
    const joined = Object.keys(result.body.rooms?.join ?? {}).length;
    if (joined < BIG_ROOMS) throw new Error(`initial sync listed ${joined} joined rooms, expected ${BIG_ROOMS}`);
    return { ms, bytes: result.bytes };
  };
  // Right after the set-up the push gateway may still be behind the log; /sync then evaluates the
  // events past its cursor itself (libs/push UnreadCounter). One sync is timed then, the rest once it caught up.
  const metricsUrl = `${server.services[server.mode === 'cluster' ? 'push-gateway' : 'atrium']}/metrics`;
  const lagBehind = await pushLag(metricsUrl);
  const early = await initialSync();
  const caughtUp = await waitForPushGateway(metricsUrl);
  const times: number[] = [];
  let bytes = 0;
  for (let run = 0; run < INITIAL_SYNC_RUNS; run++) {
    const one = await initialSync();
    times.push(one.ms);
    bytes = one.bytes;
  }
  times.sort((a, b) => a - b);
  return [
    {
      name: `${label}: initial /sync, ${BIG_ROOMS} rooms × ${perRoom} events`,
      value: percentile(times, 50),
      unit: 'ms',
      note: `median of ${INITIAL_SYNC_RUNS} once the push gateway caught up; lazy_load_members, full_state; ${(bytes / 1024).toFixed(0)} KiB response`,
    },
    {
      name: `${label}: initial /sync right after the set-up sends`,
      value: early.ms,
      unit: 'ms',
      note: `one run, with the push gateway ${lagBehind} events behind (/sync evaluates those itself); it caught up ${caughtUp.toFixed(0)} s later`,
    },
    {
      name: `${label}: initial-sync set-up sends`,
      value: (BIG_ROOMS * perRoom) / seedSeconds,
      unit: 'events/s',
      note: `${BIG_ROOMS * perRoom} PUT /send, ${SEED_CONCURRENCY} in flight, into ${BIG_ROOMS} rooms; ${seedSeconds.toFixed(0)} s`,
    },
  ];
}

/** `atrium_push_lag_events` from a /metrics page: how far the push gateway is behind the events stream. */
async function pushLag(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith('atrium_push_lag_events'));
  if (!line) throw new Error(`${metricsUrl} has no atrium_push_lag_events`);
  return Number(line.split(' ').pop());
}

/** Waits (at most 15 minutes) until the push gateway reports no lag; answers the seconds waited. */
async function waitForPushGateway(metricsUrl: string): Promise<number> {
  const t0 = performance.now();
  for (let polls = 0; polls < 1800; polls++) {
    if ((await pushLag(metricsUrl)) === 0) return (performance.now() - t0) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error('the push gateway did not catch up within 15 minutes');
}

function modesFromArgs(): Mode[] {
  const i = process.argv.indexOf('--mode');
  const value = i >= 0 ? process.argv[i + 1] : 'both';
  if (value === 'embedded' || value === 'cluster') return [value];
  return ['embedded', 'cluster'];
}

const SCENARIOS = { sends: benchSends, wakeups: benchWakeups, 'initial-sync': benchInitialSync } as const;
type ScenarioName = keyof typeof SCENARIOS;

/** `--scenario a,b` runs only those (default all); rows of the others already in the section are kept. */
function scenariosFromArgs(): ScenarioName[] {
  const i = process.argv.indexOf('--scenario');
  if (i < 0) return Object.keys(SCENARIOS) as ScenarioName[];
  const names = (process.argv[i + 1] ?? '').split(',');
  for (const name of names) if (!(name in SCENARIOS)) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  return names as ScenarioName[];
}

/** The rows of a BENCHMARKS.md section as written by writeBenchmarkSection. */
function rowsOfSection(section: string): BenchResult[] {
  // The source tree's file, also when run from dist/bench (as report.ts finds it).
  const path = joinPath(__dirname, '..', existsSync(joinPath(__dirname, '..', 'package.json')) ? '' : '..', 'BENCHMARKS.md');
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const at = text.indexOf(`## ${section}\n`);
  if (at < 0) return [];
  const end = text.indexOf('\n## ', at + 1);
  const rows: BenchResult[] = [];
  for (const line of text.slice(at, end < 0 ? undefined : end).split('\n')) {
    const cells = /^\| (.+?) \| ([\d,.]+) \| (.*?) \| (.*?) \|$/.exec(line);
    if (cells) rows.push({ name: cells[1], value: Number(cells[2].replace(/,/g, '')), unit: cells[3], note: cells[4] || undefined });
  }
  return rows;
}

async function main(): Promise<void> {
  const scenarios = scenariosFromArgs();
  const all = scenarios.length === Object.keys(SCENARIOS).length;
  for (const mode of modesFromArgs()) {
    const section = `Client-Server API, ${mode} mode`;
    // Figures from a busy machine are not comparable with a quiet one's: say which it was.
    const load: BenchResult = {
      name: all ? 'load average (1 min) when the run started' : `load average (1 min) when the ${scenarios.join(' + ')} run started`,
      value: loadavg()[0],
      unit: 'runnable tasks',
      note: 'on 2 cores: above 2 means other work competed with the benchmark',
    };
    const kept = all ? [] : rowsOfSection(section).filter((r) => r.name !== load.name && !scenarios.some((name) => rowBelongsTo(r.name, name)));
    const results: BenchResult[] = [...kept, load];
    const server = await startTestServer(mode, { env: { ATRIUM_RATE_LIMITS__ENABLED: 'false', ATRIUM_TELEMETRY__LOG_LEVEL: 'error' } });
    // One section per mode, rewritten after each scenario: `--mode` runs keep each other's
    // figures, and a run cut short (the cluster's initial-sync set-up is long) keeps what it measured.
    // A subset run says which rows are its own: those after its load-average row.
    const command = all ? `npm run bench:client -- --mode ${mode}` : `npm run bench:client -- --mode ${mode}\` (rows after a "load average … when the … run started" row: \`--scenario …\` on a fresh server`;
    const record = (): void => void writeBenchmarkSection(section, command, results);
    try {
      for (const name of scenarios) {
        results.push(...(await SCENARIOS[name](server, mode)));
        record();
        console.log(results.map((r) => `${r.name}: ${r.value.toFixed(1)} ${r.unit}`).join('\n'));
      }
    } finally {
      await server.stop();
    }
  }
}

/** Which scenario wrote a row, from its name. */
function rowBelongsTo(row: string, scenario: ScenarioName): boolean {
  if (scenario === 'sends') return /: send, /.test(row);
  if (scenario === 'wakeups') return /: \/sync wake-up/.test(row);
  return /: initial[ -]/.test(row);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
