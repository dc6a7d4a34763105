/**
 * `node dist/bench/storage-profile.js [--out DIR] [--scenario initial-sync [--rooms N] [--per-room M]]`
 * (after `node scripts/build.mjs`):
 * which storage commands the cluster mode spends its time on. Starts the
 * cluster as the e2e suite does, with ATRIUM_STORAGE_PROFILE set so every
 * service records its MongoDB commands (libs/storage mongo-profile.ts), runs
 * a short version of bench:client's one-room load (50 members, 10 senders × 10
 * sends) and 10 /sync wake-ups, or of its initial-sync scenario, then prints
 * the commands by total time with their mean and largest round trip. Bounded
 * in count, like the benchmarks.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer } from '../e2e/support/servers';
import { createRoom, join as joinRoom, register, sendMessage, sync, type Session } from './client/http';
import { INITIAL_SYNC_FILTER, measureWakeups, seedRooms } from './client/scenarios';

const MEMBERS = 50;
const SENDERS = 10;
const SENDS = 10;
const WAKEUPS = 10;

interface Row {
  command: string;
  count: number;
  totalMs: number;
  maxMs: number;
}

type Totals = Map<string, Row & { services: Set<string> }>;

/** Sums every service's profile file in `out`. */
function readTotals(out: string): Totals {
  const rows: Totals = new Map();
  for (const f of readdirSync(out).filter((name) => name.startsWith('mongo-profile-'))) {
    const profile = JSON.parse(readFileSync(join(out, f), 'utf8')) as { argv: string[]; rows: Row[] };
    const service = /apps\/([^/]+)\//.exec(profile.argv[0] ?? '')?.[1] ?? 'cli';
    for (const r of profile.rows) {
      const into = rows.get(r.command) ?? { command: r.command, count: 0, totalMs: 0, maxMs: 0, services: new Set<string>() };
      into.count += r.count;
      into.totalMs += r.totalMs;
      into.maxMs = Math.max(into.maxMs, r.maxMs);
      into.services.add(service);
      rows.set(r.command, into);
    }
  }
  return rows;
}

/** `after` less `before`: what happened in between (max is of the whole run). */
function subtract(after: Totals, before: Totals): Totals {
  const rows: Totals = new Map();
  for (const [command, r] of after) {
    const b = before.get(command);
    const count = r.count - (b?.count ?? 0);
    if (count > 0) rows.set(command, { ...r, count, totalMs: r.totalMs - (b?.totalMs ?? 0) });
  }
  return rows;
}

function printTotals(title: string, rows: Totals): void {
  const sorted = [...rows.values()].sort((a, b) => b.totalMs - a.totalMs);
  const total = sorted.reduce((s, r) => s + r.totalMs, 0);
  console.log(`${title}: storage round trips: ${sorted.reduce((s, r) => s + r.count, 0)}, ${(total / 1000).toFixed(1)} s in total`);
  console.log('total ms | count | mean ms | max ms | command | services');
  for (const r of sorted.slice(0, 40)) {
    console.log(`${r.totalMs.toFixed(0)} | ${r.count} | ${(r.totalMs / r.count).toFixed(1)} | ${r.maxMs.toFixed(0)} | ${r.command} | ${[...r.services].join(' ')}`);
  }
}

function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} wants a positive integer`);
  return value;
}

/** The one-room load and the wake-ups (the default scenario). */
async function profileSends(base: string): Promise<void> {
  const prefix = `prof${Date.now().toString(36)}u`;
  const users: Session[] = [];
  for (let k = 0; k < MEMBERS; k++) users.push(await register(base, `${prefix}${k}`));
  const room = await createRoom(base, users[0]);
  for (const u of users.slice(1)) await joinRoom(base, u, room);
  const t0 = performance.now();
  await Promise.all(
    users.slice(0, SENDERS).map(async (u, k) => {
      for (let n = 0; n < SENDS; n++) await sendMessage(base, u, room, `profile ${k} ${n}`);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  console.log(`one room, ${MEMBERS} members, ${SENDERS} senders × ${SENDS}: ${((SENDERS * SENDS) / seconds).toFixed(1)} events/s`);
  const wakes = await measureWakeups(base, users[MEMBERS - 1], users[MEMBERS - 2], room, WAKEUPS);
  console.log(`wake-up p50 ${wakes[Math.floor(wakes.length / 2)].toFixed(0)} ms, max ${wakes[wakes.length - 1].toFixed(0)} ms`);
}

/**
 * bench:client's initial-sync scenario, smaller by default (`--rooms`,
 * `--per-room`): the set-up is profiled apart from the initial /syncs, whose
 * commands are printed on their own.
 */
async function profileInitialSync(base: string, out: string): Promise<void> {
  const rooms = numberArg('--rooms', 50);
  const perRoom = numberArg('--per-room', 5);
  const [user, other] = [await register(base, `pis${Date.now().toString(36)}a`), await register(base, `pis${Date.now().toString(36)}b`)];
  const seeded = await seedRooms(base, user, other, rooms, perRoom, 10);
  console.log(`set-up: ${rooms} rooms created and joined in ${seeded.createSeconds.toFixed(1)} s; ${rooms * perRoom} sends in ${seeded.sendSeconds.toFixed(1)} s`);
  // Every service writes its profile every 5 s: wait for one write after the set-up.
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const before = readTotals(out);
  for (let run = 0; run < 3; run++) {
    const s0 = performance.now();
    const result = await sync(base, user, { filter: INITIAL_SYNC_FILTER, full_state: 'true', timeout: '0' });
    console.log(`initial /sync ${run + 1}: ${(performance.now() - s0).toFixed(0)} ms, ${Object.keys(result.body.rooms?.join ?? {}).length} joined rooms`);
  }
  await new Promise((resolve) => setTimeout(resolve, 6000));
  printTotals('the 3 initial /syncs (and whatever ran beside them)', subtract(readTotals(out), before));
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--out');
  const out = i >= 0 ? process.argv[i + 1] : join(process.cwd(), 'storage-profile');
  const scenario = process.argv.includes('initial-sync') ? 'initial-sync' : 'sends';
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (f.startsWith('mongo-profile-')) throw new Error(`${out} holds an earlier profile; use an empty directory`);
  process.env.ATRIUM_STORAGE_PROFILE = out;
  const server = await startTestServer('cluster', { env: { ATRIUM_RATE_LIMITS__ENABLED: 'false', ATRIUM_TELEMETRY__LOG_LEVEL: 'error' } });
  try {
    if (scenario === 'initial-sync') await profileInitialSync(server.baseUrl, out);
    else await profileSends(server.baseUrl);
  } finally {
    await server.stop();
  }
  printTotals('the whole run', readTotals(out));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
