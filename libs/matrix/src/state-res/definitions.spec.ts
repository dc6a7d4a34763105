/**
 * The parts of state resolution that need no authorization rules: the
 * conflicted split, the auth difference, the v12 conflicted state subgraph,
 * power events, batched loading of auth chains and the ordering tools.
 * Events here are bare graph nodes (type, state key, auth events).
 */
import { stateKey, type JsonObject, type RoomEvent, type StateMap } from '../events/pdu';
import { ROOM_VERSIONS } from '../room-versions';
import { authDifference, conflictedStateSubgraph, isPowerEvent, splitConflicted } from './definitions';
import { AuthEventGraph, LOAD_BATCH_SIZE } from './event-graph';
import { MinHeap, compareCodePoints } from './ordering';

const ROOM = '!room:example.org';

function node(id: string, type: string, key: string, auth: string[], content: JsonObject = {}, sender = '@alice:example.org'): RoomEvent {
  return {
    event_id: `$${id}`,
    room_id: ROOM,
    sender,
    type,
    state_key: key,
    content,
    origin_server_ts: 0,
    depth: 0,
    prev_events: [],
    auth_events: auth.map((a) => `$${a}`),
    hashes: { sha256: '' },
    signatures: {},
  };
}

function stateOf(...events: RoomEvent[]): StateMap {
  return new Map(events.map((e) => [stateKey(e.type, e.state_key as string), e]));
}

function graphOf(events: RoomEvent[]): { graph: AuthEventGraph; calls: string[][] } {
  const byId = new Map(events.map((e) => [e.event_id, e]));
  const calls: string[][] = [];
  const graph = new AuthEventGraph(ROOM_VERSIONS['11'], ROOM, async (ids) => {
    calls.push(ids);
    return new Map(ids.filter((id) => byId.has(id)).map((id) => [id, byId.get(id) as RoomEvent]));
  });
  return { graph, calls };
}

const ids = (set: Iterable<string>): string[] => [...set].map((id) => id.slice(1)).sort();

// A small room: CREATE ← PL1 ← PL2 ← PL3, members citing power levels.
const CREATE = node('CREATE', 'm.room.create', '', []);
const JA = node('JA', 'm.room.member', '@alice:example.org', ['CREATE'], { membership: 'join' });
const PL1 = node('PL1', 'm.room.power_levels', '', ['CREATE', 'JA']);
const PL2 = node('PL2', 'm.room.power_levels', '', ['CREATE', 'JA', 'PL1']);
const PL3 = node('PL3', 'm.room.power_levels', '', ['CREATE', 'JA', 'PL2']);
const JB = node('JB', 'm.room.member', '@bob:example.org', ['CREATE', 'PL1'], { membership: 'join' }, '@bob:example.org');
const TOPIC = node('TOPIC', 'm.room.topic', '', ['CREATE', 'JA', 'PL2']);
const ALL = [CREATE, JA, PL1, PL2, PL3, JB, TOPIC];

describe('splitConflicted', () => {
  it('puts a key in the unconflicted map only when every state has the same event', () => {
    const s1 = stateOf(CREATE, JA, PL3, JB);
    const s2 = stateOf(CREATE, JA, PL1, TOPIC);
    const { unconflicted, conflicted } = splitConflicted([s1, s2]);
    expect(ids([...unconflicted.values()].map((e) => e.event_id))).toEqual(['CREATE', 'JA']);
    // PL differs; JB and TOPIC are missing from one state each.
    expect(ids(conflicted.keys())).toEqual(['JB', 'PL1', 'PL3', 'TOPIC']);
  });
});

describe('authDifference', () => {
  it('is the union of the full auth chains minus their intersection', async () => {
    const { graph } = graphOf(ALL);
    const s1 = stateOf(CREATE, JA, PL3);
    const s2 = stateOf(CREATE, JA, PL1, JB);
    for (const e of [...s1.values(), ...s2.values()]) graph.add(e);
    await graph.loadAuthClosure([...s1.values(), ...s2.values()].map((e) => e.event_id));
    // C1 = {CREATE, JA, PL1, PL2} (PL3's chain); C2 = {CREATE, JA, PL1} (JB's and PL1's chains).
    expect(ids(authDifference([s1, s2], graph))).toEqual(['PL2']);
  });

  it('counts an event cited by every state as common, even when it is itself in a state', async () => {
    const { graph } = graphOf(ALL);
    const s1 = stateOf(CREATE, JA, PL2, TOPIC);
    const s2 = stateOf(CREATE, JA, PL3);
    for (const e of [...s1.values(), ...s2.values()]) graph.add(e);
    await graph.loadAuthClosure([...s1.values(), ...s2.values()].map((e) => e.event_id));
    // PL2 is cited by TOPIC (in S1) and by PL3 (in S2): in both chains.
    expect(ids(authDifference([s1, s2], graph))).toEqual([]);
  });
});

describe('conflictedStateSubgraph', () => {
  it('holds the events on auth paths between conflicted events, endpoints included, and nothing else', async () => {
    const { graph } = graphOf(ALL);
    for (const e of ALL) graph.add(e);
    // PL3 → PL2 → PL1 and TOPIC → PL2 → PL1: PL2 lies between conflicted
    // events. JA and CREATE are below them but lead to no conflicted event.
    const subgraph = conflictedStateSubgraph(new Set(['$PL3', '$PL1', '$TOPIC']), graph);
    expect(ids(subgraph)).toEqual(['PL1', 'PL2', 'PL3', 'TOPIC']);
  });

  it('is just the conflicted events when no path joins them', async () => {
    const { graph } = graphOf(ALL);
    for (const e of ALL) graph.add(e);
    expect(ids(conflictedStateSubgraph(new Set(['$JB', '$TOPIC']), graph))).toEqual(['JB', 'TOPIC']);
  });
});

describe('isPowerEvent', () => {
  it('follows the definition: power levels, join rules, and leave/ban of someone else', () => {
    expect(isPowerEvent(PL1)).toBe(true);
    expect(isPowerEvent(node('JR', 'm.room.join_rules', '', []))).toBe(true);
    expect(isPowerEvent(node('K', 'm.room.member', '@bob:example.org', [], { membership: 'leave' }))).toBe(true);
    expect(isPowerEvent(node('B', 'm.room.member', '@bob:example.org', [], { membership: 'ban' }))).toBe(true);
    expect(isPowerEvent(node('L', 'm.room.member', '@alice:example.org', [], { membership: 'leave' }))).toBe(false);
    expect(isPowerEvent(JB)).toBe(false);
    expect(isPowerEvent(TOPIC)).toBe(false);
    expect(isPowerEvent(CREATE)).toBe(false);
  });
});

describe('AuthEventGraph.loadAuthClosure', () => {
  it('loads each event once, in batches of at most LOAD_BATCH_SIZE, one round per level', async () => {
    const width = LOAD_BATCH_SIZE * 2 + 500;
    const members: RoomEvent[] = [];
    for (let i = 0; i < width; i++) {
      members.push(node(`M${i}`, 'm.room.member', `@u${i}:example.org`, ['CREATE', 'PL1'], { membership: 'join' }));
    }
    const tops: RoomEvent[] = [];
    for (let i = 0; i < width; i++) tops.push(node(`S${i}`, 'org.example.state', `${i}`, [`M${i}`, 'PL2']));
    const { graph, calls } = graphOf([...ALL, ...members, ...tops]);
    for (const e of tops) graph.add(e);
    await graph.loadAuthClosure(tops.map((e) => e.event_id));
    await graph.loadAuthClosure(tops.map((e) => e.event_id)); // memoised: no more calls

    const asked = calls.flat();
    expect(new Set(asked).size).toBe(asked.length);
    expect(calls.every((batch) => batch.length <= LOAD_BATCH_SIZE)).toBe(true);
    // Level 1: the members and PL2 (width + 1 IDs, 3 batches); level 2:
    // CREATE, PL1, JA... (the rest of the chain, one batch each).
    expect(calls[0].length + calls[1].length + calls[2].length).toBe(width + 1);
    expect(graph.has('$JA')).toBe(true);
    expect(graph.has('$PL3')).toBe(false);
  });

  it('leaves out auth events the loader does not have and refuses events of another room', async () => {
    const orphan = node('ORPHAN', 'm.room.topic', '', ['MISSING', 'CREATE']);
    const { graph } = graphOf([CREATE]);
    graph.add(orphan);
    await graph.loadAuthClosure(['$ORPHAN']);
    expect(graph.has('$CREATE')).toBe(true);
    expect(graph.has('$MISSING')).toBe(false);

    expect(() => graph.add({ ...CREATE, event_id: '$OTHER', room_id: '!other:example.org' })).toThrow(/room/);
  });
});

describe('ordering tools', () => {
  it('compareCodePoints orders like code points, not UTF-16 units', () => {
    expect(compareCodePoints('$a', '$b')).toBeLessThan(0);
    expect(compareCodePoints('$b', '$a')).toBeGreaterThan(0);
    expect(compareCodePoints('$a', '$a')).toBe(0);
    expect(compareCodePoints('$a', '$ab')).toBeLessThan(0);
    // U+1F600 (surrogates D83D DE00) is above U+FF5E although D83D < FF5E.
    expect(compareCodePoints('\u{1F600}', '\uFF5E')).toBeGreaterThan(0);
    expect(compareCodePoints('\uFF5E', '\u{1F600}')).toBeLessThan(0);
    expect('\u{1F600}' < '\uFF5E').toBe(true);
  });

  it('MinHeap pops in order', () => {
    const heap = new MinHeap<number>((a, b) => a < b);
    const values = [5, 3, 9, 1, 7, 3, 8, 2, 6, 0, 4];
    for (const v of values) heap.push(v);
    const out: number[] = [];
    for (let v = heap.pop(); v !== undefined; v = heap.pop()) out.push(v);
    expect(out).toEqual([...values].sort((a, b) => a - b));
    expect(heap.size).toBe(0);
  });
});
