/**
 * The definitions of state resolution v2/v2.1 that need no authorization
 * rules: the conflicted/unconflicted split, the auth difference, the
 * conflicted state subgraph and power events.
 *
 * Spec: content/rooms/fragments/v2-state-res.md ("Definitions") and
 * content/rooms/v12.md ("Definitions").
 */
import type { RoomEvent, StateKey, StateMap } from '../events/pdu';
import type { AuthEventGraph } from './event-graph';
import { StateResolutionError } from './types';

/**
 * "If a given key K is present in every S_i with the same value V in each
 * state map, then the pair (K, V) belongs to the unconflicted state map.
 * Otherwise, V belongs to the conflicted state set." A key missing from some
 * state set is therefore conflicted. The conflicted set is keyed by event ID.
 */
export function splitConflicted(stateSets: readonly StateMap[]): {
  unconflicted: StateMap;
  conflicted: Map<string, RoomEvent>;
} {
  const unconflicted: StateMap = new Map();
  const conflicted = new Map<string, RoomEvent>();
  const keys = new Set<StateKey>();
  for (const stateSet of stateSets) for (const key of stateSet.keys()) keys.add(key);
  for (const key of keys) {
    let first: RoomEvent | undefined;
    let same = true;
    for (const stateSet of stateSets) {
      const event = stateSet.get(key);
      if (event === undefined) {
        same = false;
        continue;
      }
      if (first === undefined) first = event;
      else if (event.event_id !== first.event_id) same = false;
    }
    if (same && first !== undefined) {
      unconflicted.set(key, first);
    } else {
      for (const stateSet of stateSets) {
        const event = stateSet.get(key);
        if (event !== undefined) conflicted.set(event.event_id, event);
      }
    }
  }
  return { unconflicted, conflicted };
}

/**
 * "Auth difference. [...] first calculating the full auth chain for each
 * state S_i, that is the union of the auth chains for each event in S_i, and
 * then taking every event that doesn't appear in every auth chain. If C_i is
 * the full auth chain of S_i, then the auth difference is ∪C_i − ∩C_i."
 *
 * One walk per state set over the auth graph counts, for each event, how many
 * of the C_i contain it; the auth chain of an event does not contain the
 * event itself, so a walk starts from the state events' auth events.
 */
export function authDifference(stateSets: readonly StateMap[], graph: AuthEventGraph): Set<string> {
  const containingChains = new Map<string, number>();
  const lastWalk = new Map<string, number>();
  stateSets.forEach((stateSet, walk) => {
    const stack: string[] = [];
    for (const event of stateSet.values()) stack.push(...graph.authIds(event.event_id));
    for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
      if (lastWalk.get(id) === walk) continue;
      lastWalk.set(id, walk);
      containingChains.set(id, (containingChains.get(id) ?? 0) + 1);
      for (const authId of graph.authIds(id)) if (lastWalk.get(authId) !== walk) stack.push(authId);
    }
  });
  const difference = new Set<string>();
  for (const [id, count] of containingChains) if (count < stateSets.length) difference.add(id);
  return difference;
}

/**
 * content/rooms/v12.md, "Conflicted state subgraph": "Starting from an event
 * in the conflicted state set and following auth_events edges may lead to
 * another event in the conflicted state set. The union of all such paths
 * between any pair of events in the conflicted state set (including
 * endpoints) forms a subgraph".
 *
 * An event lies on such a path exactly when it is reached from a conflicted
 * event and itself reaches a conflicted event. One post-order walk from the
 * conflicted events settles "reaches a conflicted event" for every event of
 * their auth chains, each event once.
 */
export function conflictedStateSubgraph(conflictedIds: ReadonlySet<string>, graph: AuthEventGraph): Set<string> {
  const reaches = new Map<string, boolean>();
  const onPath = new Set<string>();
  for (const root of conflictedIds) {
    if (reaches.has(root)) continue;
    const stack: Array<{ id: string; next: number; reaches: boolean }> = [{ id: root, next: 0, reaches: false }];
    onPath.add(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const authIds = graph.authIds(top.id);
      if (top.next < authIds.length) {
        const authId = authIds[top.next++];
        if (conflictedIds.has(authId)) top.reaches = true;
        const known = reaches.get(authId);
        if (known !== undefined) {
          if (known) top.reaches = true;
        } else if (graph.has(authId) && !onPath.has(authId)) {
          onPath.add(authId);
          stack.push({ id: authId, next: 0, reaches: false });
        }
      } else {
        stack.pop();
        onPath.delete(top.id);
        reaches.set(top.id, top.reaches);
        if (top.reaches && stack.length > 0) stack[stack.length - 1].reaches = true;
      }
    }
  }
  const subgraph = new Set(conflictedIds);
  for (const [id, reachesConflicted] of reaches) if (reachesConflicted) subgraph.add(id);
  return subgraph;
}

/**
 * "Power events. A power event is a state event with type
 * m.room.power_levels or m.room.join_rules, or a state event with type
 * m.room.member where the membership is leave or ban and the sender does not
 * match the state_key."
 */
export function isPowerEvent(event: RoomEvent): boolean {
  if (event.state_key === undefined) return false;
  if (event.type === 'm.room.power_levels' || event.type === 'm.room.join_rules') return true;
  if (event.type === 'm.room.member') {
    const membership = event.content['membership'];
    return (membership === 'leave' || membership === 'ban') && event.sender !== event.state_key;
  }
  return false;
}

/** Rooms 1..12 all carry the room ID on every RoomEvent; check that the sets agree. */
export function roomIdOf(stateSets: readonly StateMap[]): string | undefined {
  let roomId: string | undefined;
  for (const stateSet of stateSets) {
    for (const event of stateSet.values()) {
      if (roomId === undefined) roomId = event.room_id;
      else if (event.room_id !== roomId) {
        throw new StateResolutionError(`state sets mix rooms ${roomId} and ${event.room_id}`);
      }
    }
  }
  return roomId;
}
