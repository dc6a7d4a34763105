/**
 * State resolution v2 (room versions 2–11) and v2.1 (room version 12) on
 * hand-built event graphs. Each test tells a story of two forks and states the
 * resolved state it expects, with the reason taken from the spec's algorithm.
 */
import { stateKey, type StateMap } from '../events/pdu';
import { ROOM_VERSIONS, type RoomVersionId } from '../room-versions';
import { resolveState, StateResolutionError } from './index';
import { at, eventId, newRoom, summarise, userId, type Branch, type TestRoom } from './test-support/room-graph';

async function resolve(room: TestRoom, ...branches: Branch[]): Promise<StateMap> {
  const { load } = room.loader();
  return resolveState({ version: room.version, stateSets: branches.map((b) => b.state), loadEvents: load });
}

const member = (state: StateMap, name: string): string | undefined => at(state, 'm.room.member', userId(name));

describe('state resolution v2 (room version 11)', () => {
  it('a ban racing a power level change: the admin demotion is applied first and the ban is refused', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IME', 'evelyn', 'join');
    const a = main.fork();
    const b = main.fork();
    // Bob's ban carries the earlier timestamp: power, not time, decides.
    b.member('BAN', 'bob', 'ban', 'evelyn');
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    expect(member(state, 'evelyn')).toBe('IME');
  });

  it('a topic set by a user whose power was removed concurrently is refused', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.topic('T1', 'alice', 'first topic');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });
    b.topic('T2', 'bob', 'bob was here');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    expect(at(state, 'm.room.topic')).toBe('T1');
  });

  it('the same topic survives when nothing removed the power concurrently', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.topic('T1', 'alice', 'first topic');
    const a = main.fork();
    const b = main.fork();
    a.member('IMC', 'carol', 'join');
    b.topic('T2', 'bob', 'bob was here');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.topic')).toBe('T2');
    expect(member(state, 'carol')).toBe('IMC');
  });

  it('a join racing a change of the join rule to invite is refused', async () => {
    const { room, main } = newRoom('11');
    const a = main.fork();
    const b = main.fork();
    a.joinRules('JR2', 'alice', 'invite');
    b.member('IMC', 'charlie', 'join');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.join_rules')).toBe('JR2');
    // The key exists in one state set only, so it is conflicted and re-checked.
    expect(member(state, 'charlie')).toBeUndefined();
  });

  it('a kick of a user promoted above the kicker concurrently is refused', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMC', 'carol', 'join');
    const a = main.fork();
    const b = main.fork();
    b.member('KICK', 'bob', 'leave', 'carol');
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 50, carol: 75 });

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    expect(member(state, 'carol')).toBe('IMC');
  });

  it('the same kick stands when nothing promoted its target concurrently', async () => {
    // Control for the test above: the same kick with no concurrent promotion.
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMC', 'carol', 'join');
    const a = main.fork();
    const b = main.fork();
    b.member('KICK', 'bob', 'leave', 'carol');
    a.topic('T', 'alice', 'unrelated');

    const state = await resolve(room, a, b);
    expect(member(state, 'carol')).toBe('KICK');
    expect(at(state, 'm.room.topic')).toBe('T');
  });

  describe('mainline ordering', () => {
    it('events on the same mainline position are applied by timestamp: the later one wins', async () => {
      const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
      main.member('IMB', 'bob', 'join');
      const a = main.fork();
      const b = main.fork();
      a.topic('TA', 'alice', 'from alice', 5_000);
      b.topic('TB', 'bob', 'from bob', 4_000);
      expect(at(await resolve(room, a, b), 'm.room.topic')).toBe('TA');

      const later = newRoom('11', { users: { alice: 100, bob: 50 } });
      later.main.member('IMB', 'bob', 'join');
      const c = later.main.fork();
      const d = later.main.fork();
      c.topic('TA', 'alice', 'from alice', 4_000);
      d.topic('TB', 'bob', 'from bob', 5_000);
      expect(at(await resolve(later.room, c, d), 'm.room.topic')).toBe('TB');
    });

    it('with equal positions and timestamps the greater event ID is applied last', async () => {
      const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
      main.member('IMB', 'bob', 'join');
      const a = main.fork();
      const b = main.fork();
      a.topic('TOPIC-B', 'alice', 'b', 7_000);
      b.topic('TOPIC-A', 'bob', 'a', 7_000);
      expect(at(await resolve(room, a, b), 'm.room.topic')).toBe('TOPIC-B');
    });

    it('an event based on a later power levels event beats a later timestamp', async () => {
      const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
      main.member('IMB', 'bob', 'join');
      const a = main.fork();
      const b = main.fork();
      a.powerLevels('PL2', 'alice', { alice: 100, bob: 50 });
      a.topic('TA', 'alice', 'cites PL2', 2_000);
      b.topic('TB', 'bob', 'cites IPOWER', 9_000);

      // Mainline of PL2 is [PL2, IPOWER]: TA sits at position 0, TB at 1, so
      // TB is ordered first and TA, applied last, wins despite its timestamp.
      const state = await resolve(room, a, b);
      expect(at(state, 'm.room.power_levels')).toBe('PL2');
      expect(at(state, 'm.room.topic')).toBe('TA');
    });
  });

  describe('restricted joins (room version 10)', () => {
    const restricted = {
      users: { alice: 100, bob: 50 },
      powerLevels: { invite: 50 },
    };

    function restrictedRoom(): { room: TestRoom; main: Branch } {
      const { room, main } = newRoom('10', restricted);
      main.member('IMB', 'bob', 'join');
      main.joinRules('JR-R', 'alice', 'restricted', {
        allow: [{ type: 'm.room_membership', room_id: '!space:example.org' }],
      });
      return { room, main };
    }

    it('a join authorised by a user who concurrently lost the power to invite is refused', async () => {
      const { room, main } = restrictedRoom();
      const a = main.fork();
      const b = main.fork();
      a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 }, { invite: 50 });
      b.member('IMC', 'charlie', 'join', 'charlie', { join_authorised_via_users_server: userId('bob') });

      const state = await resolve(room, a, b);
      expect(at(state, 'm.room.power_levels')).toBe('PL2');
      expect(member(state, 'charlie')).toBeUndefined();
    });

    it('the same restricted join stands when the authorising user kept the power', async () => {
      const { room, main } = restrictedRoom();
      const a = main.fork();
      const b = main.fork();
      a.topic('T', 'alice', 'unrelated');
      b.member('IMC', 'charlie', 'join', 'charlie', { join_authorised_via_users_server: userId('bob') });

      const state = await resolve(room, a, b);
      expect(member(state, 'charlie')).toBe('IMC');
    });
  });

  describe('knocking (room version 10)', () => {
    it('a knock racing a change of the join rule from knock to invite is refused', async () => {
      const { room, main } = newRoom('10', { joinRule: 'knock' });
      const a = main.fork();
      const b = main.fork();
      a.joinRules('JR2', 'alice', 'invite');
      b.member('KNOCK', 'dave', 'knock');

      const state = await resolve(room, a, b);
      expect(at(state, 'm.room.join_rules')).toBe('JR2');
      expect(member(state, 'dave')).toBeUndefined();
    });

    it('a ban racing an invite that answered a knock wins', async () => {
      const { room, main } = newRoom('10', { joinRule: 'knock' });
      main.member('KNOCK', 'dave', 'knock');
      const a = main.fork();
      const b = main.fork();
      a.member('INVITE', 'alice', 'invite', 'dave');
      b.member('BAN', 'alice', 'ban', 'dave');

      // BAN is a power event (step 1); INVITE is checked afterwards (step 4)
      // and refused because "the target user is banned".
      const state = await resolve(room, a, b);
      expect(member(state, 'dave')).toBe('BAN');
    });

    it('an accepted knock (knock, invite, join) survives an unrelated concurrent change', async () => {
      const { room, main } = newRoom('10', { joinRule: 'knock' });
      const a = main.fork();
      const b = main.fork();
      a.member('KNOCK', 'dave', 'knock');
      a.member('INVITE', 'alice', 'invite', 'dave');
      a.member('JOIN', 'dave', 'join');
      b.topic('T', 'alice', 'hello');

      const state = await resolve(room, a, b);
      expect(member(state, 'dave')).toBe('JOIN');
      expect(at(state, 'm.room.topic')).toBe('T');
    });
  });

  it('uses the unconflicted state as the starting state (v2): a concurrent kick by a user banned in both sets is refused', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMD', 'dave', 'join');
    const a = main.fork();
    const b = main.fork();
    a.member('KICK', 'bob', 'leave', 'dave');
    b.member('BANB', 'alice', 'ban', 'bob');
    a.adopt('BANB');

    const state = await resolve(room, a, b);
    expect(member(state, 'bob')).toBe('BANB');
    expect(member(state, 'dave')).toBe('IMD');
  });

  it('resets power levels when the path between the conflicted ones is common to both auth chains (v2)', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMD', 'dave', 'join');
    const a = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 100 });
    a.topic('T', 'bob', 'cites PL2');
    a.powerLevels('PL3', 'bob', { alice: 100, bob: 100, dave: 75 });
    // A second state set that agrees on everything but the power levels,
    // which it holds at IPOWER; PL2 is in both full auth chains (through T).
    const b = a.fork();
    b.adopt('IPOWER');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('IPOWER');
  });
});

describe('state resolution v2.1 (room version 12)', () => {
  it('creators sort first and outrank everyone: an additional creator bans an admin who changed power levels earlier', async () => {
    const { room, main } = newRoom('12', { additionalCreators: ['zed'], users: { bob: 100 } });
    main.member('IMZ', 'zed', 'join');
    main.member('IMB', 'bob', 'join');
    main.member('IMC', 'carol', 'join');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'bob', { bob: 100, carol: 100 });
    b.member('BAN', 'zed', 'ban', 'bob');

    const state = await resolve(room, a, b);
    expect(member(state, 'bob')).toBe('BAN');
    // PL2 comes after the ban in the power ordering and its sender is no
    // longer joined.
    expect(at(state, 'm.room.power_levels')).toBe('IPOWER');
  });

  it('creators keep their power whatever a concurrent power levels event says', async () => {
    const { room, main } = newRoom('12', { additionalCreators: ['zed'], users: { bob: 100 } });
    main.member('IMZ', 'zed', 'join');
    main.member('IMB', 'bob', 'join');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'bob', { bob: 100 }, { events: { 'm.room.topic': 100 }, state_default: 100 });
    b.topic('TZ', 'zed', 'creators always may');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    expect(at(state, 'm.room.topic')).toBe('TZ');
  });

  it('starts the iterative auth checks from an empty state: the concurrent kick by the later-banned user stands', async () => {
    const { room, main } = newRoom('12', { users: { bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMD', 'dave', 'join');
    const a = main.fork();
    const b = main.fork();
    a.member('KICK', 'bob', 'leave', 'dave');
    b.member('BANB', 'alice', 'ban', 'bob');
    a.adopt('BANB');

    const state = await resolve(room, a, b);
    expect(member(state, 'bob')).toBe('BANB');
    expect(member(state, 'dave')).toBe('KICK');
  });

  it('does not use rejected auth events in the iterative auth checks', async () => {
    // The same graph as above, but Bob's join is known to have been rejected:
    // his membership is not in the (empty) state and his auth event may not
    // stand in for it, so the kick fails.
    const { room, main } = newRoom('12', { users: { bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMD', 'dave', 'join');
    const a = main.fork();
    const b = main.fork();
    a.member('KICK', 'bob', 'leave', 'dave');
    b.member('BANB', 'alice', 'ban', 'bob');
    a.adopt('BANB');

    const rejected = new Set([eventId('IMB')]);
    const state = await resolveState({
      version: room.version,
      stateSets: [a.state, b.state],
      loadEvents: room.loader().load,
      isRejected: (id) => rejected.has(id),
    });
    expect(member(state, 'dave')).toBe('IMD');
    expect(member(state, 'bob')).toBe('BANB');
  });

  it('replays the conflicted state subgraph, so the power levels are not reset', async () => {
    const { room, main } = newRoom('12', { users: { bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMD', 'dave', 'join');
    const a = main.fork();
    a.powerLevels('PL2', 'alice', { bob: 100 });
    a.topic('T', 'bob', 'cites PL2');
    a.powerLevels('PL3', 'bob', { bob: 100, dave: 75 });
    const b = a.fork();
    b.adopt('IPOWER');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL3');
    expect(at(state, 'm.room.topic')).toBe('T');
  });
});

describe('trivial cases and plumbing', () => {
  it('returns the only state set as it is, loading nothing', async () => {
    const { room, main } = newRoom('11');
    main.topic('T', 'alice', 'x');
    const { load, calls } = room.loader();
    const state = await resolveState({ version: room.version, stateSets: [main.state], loadEvents: load });
    expect(summarise(state)).toEqual(summarise(main.state));
    expect(state).not.toBe(main.state);
    expect(calls).toHaveLength(0);
  });

  it('returns the unconflicted state when all state sets agree, loading nothing', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    const other = main.fork();
    const { load, calls } = room.loader();
    const state = await resolveState({ version: room.version, stateSets: [main.state, other.state], loadEvents: load });
    expect(summarise(state)).toEqual({
      'm.room.create|': 'CREATE',
      'm.room.join_rules|': 'IJR',
      [`m.room.member|${userId('alice')}`]: 'IMA',
      [`m.room.member|${userId('bob')}`]: 'IMB',
      'm.room.power_levels|': 'IPOWER',
    });
    expect(calls).toHaveLength(0);
  });

  it('returns an empty state for no state sets', async () => {
    const state = await resolveState({ version: ROOM_VERSIONS['11'], stateSets: [], loadEvents: async () => new Map() });
    expect(state.size).toBe(0);
  });

  it('keeps unconflicted entries and resolves the rest for every v2 room version', async () => {
    for (const id of ['2', '3', '4', '5', '6', '7', '8', '9', '10', '11'] as RoomVersionId[]) {
      const { room, main } = newRoom(id, { users: { alice: 100, bob: 50 } });
      main.member('IMB', 'bob', 'join');
      main.topic('T1', 'alice', 'first');
      const a = main.fork();
      const b = main.fork();
      a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });
      b.topic('T2', 'bob', 'second');
      b.member('IMC', 'carol', 'join');
      const state = await resolve(room, a, b);
      expect({ version: id, ...summarise(state) }).toEqual({
        version: id,
        'm.room.create|': 'CREATE',
        'm.room.join_rules|': 'IJR',
        [`m.room.member|${userId('alice')}`]: 'IMA',
        [`m.room.member|${userId('bob')}`]: 'IMB',
        [`m.room.member|${userId('carol')}`]: 'IMC',
        'm.room.power_levels|': 'PL2',
        'm.room.topic|': 'T1',
      });
    }
  });

  it('gives the same result whatever the order of the state sets', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMC', 'carol', 'join');
    const a = main.fork();
    const b = main.fork();
    const c = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });
    b.member('KICK', 'bob', 'leave', 'carol');
    b.topic('TB', 'bob', 'b');
    c.topic('TC', 'alice', 'c');
    c.joinRules('JR2', 'alice', 'invite');
    const orders = [[a, b, c], [b, c, a], [c, a, b], [c, b, a]];
    const results = await Promise.all(orders.map((order) => resolve(room, ...order).then(summarise)));
    for (const result of results) expect(result).toEqual(results[0]);
    expect(results[0]['m.room.power_levels|']).toBe('PL2');
    expect(results[0]['m.room.join_rules|']).toBe('JR2');
    // Carol's key is conflicted (IMC vs KICK), so her old join IMC is replayed
    // in step 1. Senders with more power go first: JR2 (Alice, 100) is applied
    // before IMC (Carol, 0), whose join then fails in the invite-only room;
    // the kick fails too (Bob was demoted by PL2). Her membership is lost.
    expect(results[0][`m.room.member|${userId('carol')}`]).toBeUndefined();
  });

  it('loads each auth event once, in batches, one round per level of the auth graph', async () => {
    const { room, main } = newRoom('11', { users: { alice: 100 } });
    for (let i = 0; i < 40; i++) main.member(`J${i}`, `user${i}`, 'join');
    for (let i = 0; i < 5; i++) main.powerLevels(`PLX${i}`, 'alice', { alice: 100, [`user${i}`]: 10 });
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL-A', 'alice', { alice: 100, user1: 50 });
    b.member('KICK', 'alice', 'leave', 'user7');

    // Give the resolver only the state events: everything else must be loaded.
    const { load, calls } = room.loader();
    const state = await resolveState({ version: room.version, stateSets: [a.state, b.state], loadEvents: load });
    expect(at(state, 'm.room.power_levels')).toBe('PL-A');
    expect(member(state, 'user7')).toBe('KICK');
    const asked = calls.flat();
    expect(new Set(asked).size).toBe(asked.length);
    // The loader was asked only for events not already in the state sets.
    const inState = new Set([...a.state.values(), ...b.state.values()].map((e) => e.event_id));
    expect(asked.filter((id) => inState.has(id))).toEqual([]);
    // The auth graph here is a chain of power levels events, each citing the previous one.
    expect(calls.length).toBeLessThanOrEqual(8);
  });

  it('refuses state sets from different rooms', async () => {
    const one = newRoom('11');
    const two = newRoom('11');
    const forged = new Map(two.main.state);
    const create = two.main.state.get(stateKey('m.room.create', ''));
    if (!create) throw new Error('no create event');
    forged.set(stateKey('m.room.create', ''), { ...create, room_id: '!elsewhere:example.org' });
    await expect(
      resolveState({ version: one.room.version, stateSets: [one.main.state, forged], loadEvents: one.room.loader().load }),
    ).rejects.toBeInstanceOf(StateResolutionError);
  });
});
