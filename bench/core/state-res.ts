/**
 * State resolution on a big room: a synthetic room whose state holds 10,000
 * events (create, power levels changed over time, join rules, ~9,400 members,
 * widgets, name and topic), which then forks in two. On one side an admin
 * promotes a user, a moderator kicks 60 members, 60 others leave and the topic
 * changes; on the other a second moderator bans 60 members (30 of them the
 * ones kicked on the first side), 80 members change their display name and 40
 * newcomers join. Resolving the two states gives about 500 conflicted events.
 *
 * Every event is built with its real auth events (auth events selection) and
 * passes the authorization rules on its side, so the auth chains are the ones a
 * real room has. The loader answers from memory: the figure is the algorithm's
 * own cost (auth chains, ordering, iterative auth checks), not storage.
 */
import { performance } from 'node:perf_hooks';
import { resolveState, type RoomVersionId, type StateMap } from '@atrium/matrix';
import { newRoom, type Branch, type TestRoom } from '../../libs/matrix/src/state-res/test-support/room-graph';
import type { BenchResult } from '../report';

const STATE_SIZE = 10_000;
const MEMBERS = 9_400;
const RUNS = 5;

interface ForkedRoom {
  room: TestRoom;
  a: Branch;
  b: Branch;
}

function buildForkedRoom(versionId: RoomVersionId): ForkedRoom {
  const creatorsHaveInfinitePower = versionId === '12';
  const baseUsers: Record<string, number> = { mod1: 50, mod2: 50 };
  if (!creatorsHaveInfinitePower) baseUsers['alice'] = 100;
  const { room, main } = newRoom(versionId, { users: baseUsers });
  main.member('J-mod1', 'mod1', 'join');
  main.member('J-mod2', 'mod2', 'join');
  main.send({ id: 'NAME', type: 'm.room.name', stateKey: '', sender: 'alice', content: { name: 'Big room' } });
  main.topic('TOPIC0', 'alice', 'welcome');

  for (let i = 0; i < MEMBERS; i++) {
    main.member(`J${i}`, `u${i}`, 'join');
    // The admin adjusts power levels now and then, so the power levels
    // mainline is long and member events cite different power levels events.
    if (i % 1_000 === 999) {
      main.powerLevels(`PL-H${i}`, 'alice', { ...baseUsers, [`u${i}`]: 10 });
    }
  }
  for (let w = 0; main.state.size < STATE_SIZE; w++) {
    main.send({ id: `W${w}`, type: 'im.vector.modular.widgets', stateKey: `w${w}`, sender: 'mod1', content: { url: `https://w/${w}` } });
  }

  const a = main.fork();
  const b = main.fork();
  a.powerLevels('PL-A', 'alice', { ...baseUsers, u5000: 50 });
  for (let i = 0; i < 60; i++) a.member(`KICK${i}`, 'mod1', 'leave', `u${i}`);
  for (let i = 100; i < 160; i++) a.member(`LEAVE${i}`, `u${i}`, 'leave');
  for (let t = 1; t <= 5; t++) a.topic(`TOPIC-A${t}`, 'alice', `topic ${t}`);

  for (let i = 30; i < 90; i++) b.member(`BAN${i}`, 'mod2', 'ban', `u${i}`);
  for (let i = 200; i < 280; i++) b.member(`NICK${i}`, `u${i}`, 'join', `u${i}`, { displayname: `User ${i}` });
  for (let i = 0; i < 40; i++) b.member(`NEW${i}`, `new${i}`, 'join');
  return { room, a, b };
}

function conflictedEventCount(sets: StateMap[]): number {
  const keys = new Set(sets.flatMap((s) => [...s.keys()]));
  let count = 0;
  for (const key of keys) {
    const ids = sets.map((s) => s.get(key)?.event_id);
    if (ids.every((id) => id !== undefined && id === ids[0])) continue;
    count += new Set(ids.filter((id) => id !== undefined)).size;
  }
  return count;
}

async function measure(versionId: RoomVersionId): Promise<{ ms: number; conflicted: number; stateSize: number; loads: number }> {
  const { room, a, b } = buildForkedRoom(versionId);
  const stateSets = [a.state, b.state];
  let loads = 0;
  const run = async (): Promise<number> => {
    const { load, calls } = room.loader();
    const start = performance.now();
    const resolved = await resolveState({ version: room.version, stateSets, loadEvents: load });
    const elapsed = performance.now() - start;
    loads = calls.length;
    if (resolved.size < STATE_SIZE) throw new Error(`resolved state too small: ${resolved.size}`);
    return elapsed;
  };
  await run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await run());
  times.sort((x, y) => x - y);
  return { ms: times[Math.floor(times.length / 2)], conflicted: conflictedEventCount(stateSets), stateSize: a.state.size, loads };
}

export async function benchStateRes(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const [versionId, label] of [['11', 'v2 (room version 11)'], ['12', 'v2.1 (room version 12)']] as const) {
    const m = await measure(versionId);
    results.push({
      name: `state resolution ${label}, ${m.stateSize.toLocaleString('en-US')} state events, ${m.conflicted} conflicted`,
      value: m.ms,
      unit: 'ms',
      note: `median of ${RUNS} runs after a warm-up; two forks; ${m.loads} batched loads from memory; goal < 1,000 ms`,
    });
  }
  return results;
}
