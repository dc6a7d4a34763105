/**
 * State resolution for room version 1 (content/rooms/v1.md, "State
 * resolution"): depth and sha1(event_id) order the conflicts, power levels,
 * join rules and members are resolved in that order, and keys present in
 * only some states are not conflicts.
 */
import { createHash } from 'node:crypto';
import type { StateMap } from '../events/pdu';
import { resolveState } from './index';
import { at, eventId, newRoom, summarise, userId, type Branch, type TestRoom } from './test-support/room-graph';

async function resolve(room: TestRoom, ...branches: Branch[]): Promise<StateMap> {
  const { load, calls } = room.loader();
  const state = await resolveState({ version: room.version, stateSets: branches.map((b) => b.state), loadEvents: load });
  // Version 1 checks everything against R and needs no auth chain.
  expect(calls).toHaveLength(0);
  return state;
}

function message(branch: Branch, id: string, sender: string): void {
  branch.send({ id, type: 'm.room.message', sender, content: { msgtype: 'm.text', body: id } });
}

const sha1 = (name: string): string => createHash('sha1').update(eventId(name)).digest('hex');

describe('state resolution v1 (room version 1)', () => {
  it('power levels: the shallower event is taken first and a deeper one by a concurrently demoted user is refused', async () => {
    const { room, main } = newRoom('1', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });
    message(b, 'M1', 'bob');
    b.powerLevels('PL3', 'bob', { alice: 100, bob: 50, carol: 50 });

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
  });

  it('power levels: a deeper event that is allowed after the shallower one wins', async () => {
    const { room, main } = newRoom('1', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 50, carol: 10 });
    message(b, 'M1', 'alice');
    b.powerLevels('PL3', 'alice', { alice: 100, bob: 0 });

    expect(at(await resolve(room, a, b), 'm.room.power_levels')).toBe('PL3');
  });

  it('a key present in only one state is not a conflict and is kept without a check', async () => {
    const { room, main } = newRoom('1', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });
    b.topic('TB', 'bob', 'set before the demotion was known');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    // Version 2 would re-check TB and refuse it; version 1 keeps it.
    expect(at(state, 'm.room.topic')).toBe('TB');
  });

  it('other events: the deepest one wins, whatever the timestamps', async () => {
    const { room, main } = newRoom('1');
    main.topic('T0', 'alice', 'start');
    const a = main.fork();
    const b = main.fork();
    a.topic('TA', 'alice', 'shallow but late', 90_000);
    message(b, 'M1', 'alice');
    b.topic('TB', 'alice', 'deep but early', 10);

    expect(at(await resolve(room, a, b), 'm.room.topic')).toBe('TB');
  });

  it('other events at the same depth: the lowest sha1(event_id) wins', async () => {
    const { room, main } = newRoom('1');
    main.topic('T0', 'alice', 'start');
    const a = main.fork();
    const b = main.fork();
    a.topic('TOPIC-1', 'alice', 'one');
    b.topic('TOPIC-2', 'alice', 'two');

    const expected = sha1('TOPIC-1') < sha1('TOPIC-2') ? 'TOPIC-1' : 'TOPIC-2';
    expect(at(await resolve(room, a, b), 'm.room.topic')).toBe(expected);
    // And the choice does not depend on which state came first.
    expect(at(await resolve(room, b, a), 'm.room.topic')).toBe(expected);
  });

  it('other events: the deepest one is skipped when it fails the auth rules in R', async () => {
    const { room, main } = newRoom('1', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.topic('T0', 'alice', 'start');
    const a = main.fork();
    const b = main.fork();
    a.powerLevels('PL2', 'alice', { alice: 100, bob: 0 });
    message(b, 'M1', 'bob');
    b.topic('TB', 'bob', 'deeper, by a user demoted in R');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    expect(at(state, 'm.room.topic')).toBe('T0');
  });

  it('members are resolved after power levels: a kick of a concurrently promoted user is refused', async () => {
    const { room, main } = newRoom('1', { users: { alice: 100, bob: 50 } });
    main.member('IMB', 'bob', 'join');
    main.member('IMC', 'carol', 'join');
    const a = main.fork();
    const b = main.fork();
    a.member('KICK', 'bob', 'leave', 'carol');
    b.powerLevels('PL2', 'alice', { alice: 100, bob: 50, carol: 75 });

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.power_levels')).toBe('PL2');
    expect(at(state, 'm.room.member', userId('carol'))).toBe('IMC');
  });

  it('join rules are resolved before members: a join racing a switch to invite is refused', async () => {
    const { room, main } = newRoom('1');
    main.member('IMC', 'charlie', 'join');
    main.member('LEAVE', 'charlie', 'leave');
    const a = main.fork();
    const b = main.fork();
    a.joinRules('JR2', 'alice', 'invite');
    b.member('REJOIN', 'charlie', 'join');

    const state = await resolve(room, a, b);
    expect(at(state, 'm.room.join_rules')).toBe('JR2');
    // The member key is conflicted (LEAVE vs REJOIN): LEAVE is shallower and
    // taken first, REJOIN is then checked against the invite-only room.
    expect(at(state, 'm.room.member', userId('charlie'))).toBe('LEAVE');
  });

  it('returns the union when nothing conflicts', async () => {
    const { room, main } = newRoom('1');
    const a = main.fork();
    const b = main.fork();
    a.topic('TA', 'alice', 'a');
    b.send({ id: 'NAME', type: 'm.room.name', stateKey: '', sender: 'alice', content: { name: 'b' } });
    const state = await resolve(room, a, b);
    expect(summarise(state)).toEqual({ ...summarise(main.state), 'm.room.topic|': 'TA', 'm.room.name|': 'NAME' });
  });
});
