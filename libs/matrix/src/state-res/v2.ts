/**
 * State resolution for room versions 2–11 ("v2") and 12 ("v2.1").
 *
 * Spec: content/rooms/fragments/v2-state-res.md ("State resolution") and
 * content/rooms/v12.md ("State resolution"). The code follows the spec's
 * definitions and its five algorithm steps in order; the spec's words are
 * quoted in the comments.
 *
 * Cost: the auth chains of all the state events are walked once (see
 * AuthEventGraph), the auth difference is one pass per state set over that
 * graph, and every later step is linear in the full conflicted set (plus a
 * log factor for sorting).
 */
import { authEventKeys, authorizeEvent, userPowerLevel } from '../event-auth';
import { stateKey, type RoomEvent, type StateMap } from '../events/pdu';
import { AuthEventGraph, CREATE_KEY, POWER_LEVELS_KEY, createEventIdOf } from './event-graph';
import { MinHeap, compareCodePoints } from './ordering';
import { authDifference, conflictedStateSubgraph, isPowerEvent, roomIdOf, splitConflicted } from './definitions';
import type { StateResInput } from './types';

export async function resolveStateV2(input: StateResInput): Promise<StateMap> {
  const { version, stateSets } = input;
  const isV21 = version.stateResolution === 'v2.1';

  // "Unconflicted state map and conflicted state set."
  const { unconflicted, conflicted } = splitConflicted(stateSets);
  if (conflicted.size === 0) return unconflicted;

  const roomId = roomIdOf(stateSets) as string;
  const graph = new AuthEventGraph(version, roomId, input.loadEvents, input.isRejected);
  const stateEventIds = new Set<string>();
  for (const stateSet of stateSets) {
    for (const event of stateSet.values()) {
      graph.add(event);
      stateEventIds.add(event.event_id);
    }
  }
  // Room version 12: the create event is implied by the room ID, not cited in
  // auth_events, yet the auth rules and the creators' power need it.
  if (version.roomIdFromCreateEvent) await graph.fetchMissing([createEventIdOf(roomId)]);

  // "Auth chain": every state event's auth chain, loaded once.
  await graph.loadAuthClosure(stateEventIds);

  // "Full conflicted set. The full conflicted set is the union of the
  // conflicted state set[, the conflicted state subgraph (v12)] and the auth
  // difference." Events we could not load cannot take part.
  const fullConflicted = new Set<string>();
  for (const id of conflicted.keys()) fullConflicted.add(id);
  for (const id of authDifference(stateSets, graph)) fullConflicted.add(id);
  if (isV21) {
    for (const id of conflictedStateSubgraph(new Set(conflicted.keys()), graph)) fullConflicted.add(id);
  }
  for (const id of fullConflicted) if (!graph.has(id)) fullConflicted.delete(id);

  // 1. "Select the set X of all power events that appear in the full
  // conflicted set. For each such power event P, enlarge X by adding the
  // events in the auth chain of P which also belong to the full conflicted
  // set. Sort X into a list using the reverse topological power ordering."
  const powerSet = powerEventsWithAuthChains(fullConflicted, graph);
  const sortedPowerEvents = reverseTopologicalPowerOrdering(powerSet, graph);

  // 2. "Apply the iterative auth checks algorithm, starting from the
  // unconflicted state map, to the list of events from the previous step to
  // get a partially resolved state." v12 changed this to "starting from an
  // *empty* state map".
  const partial = iterativeAuthChecks(sortedPowerEvents, isV21 ? new Map() : unconflicted, graph);

  // 3. "Take all remaining events that weren't picked in step 1 and order
  // them by the mainline ordering based on the power level in the partially
  // resolved state obtained in step 2."
  const remaining: RoomEvent[] = [];
  for (const id of fullConflicted) if (!powerSet.has(id)) remaining.push(graph.get(id) as RoomEvent);
  const ordered = mainlineOrdering(remaining, partial.get(POWER_LEVELS_KEY), graph);

  // 4. "Apply the iterative auth checks algorithm on the partial resolved
  // state and the list of events from the previous step."
  const resolved = iterativeAuthChecks(ordered, partial, graph);

  // 5. "Update the result by replacing any event with the event with the same
  // key from the unconflicted state map, if such an event exists, to get the
  // final resolved state."
  for (const [key, event] of unconflicted) resolved.set(key, event);
  return resolved;
}

/**
 * Step 1's set X: the power events of the full conflicted set, plus the
 * events of their auth chains that belong to the full conflicted set. One walk
 * with a shared visited set covers the union of those auth chains.
 */
function powerEventsWithAuthChains(fullConflicted: ReadonlySet<string>, graph: AuthEventGraph): Set<string> {
  const selected = new Set<string>();
  const visited = new Set<string>();
  const stack: string[] = [];
  for (const id of fullConflicted) {
    if (isPowerEvent(graph.get(id) as RoomEvent)) {
      selected.add(id);
      stack.push(...graph.authIds(id));
    }
  }
  for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
    if (visited.has(id)) continue;
    visited.add(id);
    if (fullConflicted.has(id)) selected.add(id);
    for (const authId of graph.authIds(id)) if (!visited.has(authId)) stack.push(authId);
  }
  return selected;
}

/**
 * "Reverse topological power ordering. [...] the lexicographically smallest
 * topological ordering based on the DAG formed by auth events. [...] ordered
 * from earliest event to latest. [...] x < y if
 *  1. x's sender has greater power level than y's sender, when looking at
 *     their respective auth_events; or
 *  2. the senders have the same power level, but x's origin_server_ts is less
 *     than y's origin_server_ts; or
 *  3. the senders have the same power level and the events have the same
 *     origin_server_ts, but x's event_id is less than y's event_id.
 * The reverse topological power ordering can be found by sorting the events
 * using Kahn's algorithm for topological sorting, and at each step selecting,
 * among all the candidate vertices, the smallest vertex using the above
 * comparison relation."
 *
 * The DAG on X keeps the order the auth graph gives: an edge x → y (y must
 * come first) when y is reached from x through auth events outside X, so an
 * ordering constraint is not lost when the path between them leaves X.
 */
export function reverseTopologicalPowerOrdering(events: ReadonlySet<string>, graph: AuthEventGraph): RoomEvent[] {
  const edges = edgesWithin(events, graph);

  const powerLevel = new Map<string, number>();
  for (const id of events) {
    const event = graph.get(id) as RoomEvent;
    const authState = graph.authEventsByKey(event, false);
    powerLevel.set(id, userPowerLevel(event.sender, (type, key) => authState.get(stateKey(type, key)), graph.version));
  }
  const less = (x: string, y: string): boolean => {
    const px = powerLevel.get(x) as number;
    const py = powerLevel.get(y) as number;
    if (px !== py) return px > py;
    const tx = (graph.get(x) as RoomEvent).origin_server_ts;
    const ty = (graph.get(y) as RoomEvent).origin_server_ts;
    if (tx !== ty) return tx < ty;
    return compareCodePoints(x, y) < 0;
  };

  // Kahn's algorithm, from the events that cite no other event of the set.
  const pending = new Map<string, number>();
  const citedBy = new Map<string, string[]>();
  const candidates = new MinHeap<string>(less);
  for (const [id, targets] of edges) {
    pending.set(id, targets.length);
    for (const target of targets) {
      const list = citedBy.get(target);
      if (list) list.push(id);
      else citedBy.set(target, [id]);
    }
    if (targets.length === 0) candidates.push(id);
  }
  const ordered: RoomEvent[] = [];
  for (let id = candidates.pop(); id !== undefined; id = candidates.pop()) {
    ordered.push(graph.get(id) as RoomEvent);
    for (const citing of citedBy.get(id) ?? []) {
      const left = (pending.get(citing) as number) - 1;
      pending.set(citing, left);
      if (left === 0) candidates.push(citing);
    }
  }
  if (ordered.length < events.size) {
    // Only a cycle in auth_events (impossible with hashed event IDs, possible
    // with forged v1/v2 IDs) leaves events behind; append them in the power
    // order so the result stays deterministic.
    const placed = new Set(ordered.map((event) => event.event_id));
    const rest = [...events].filter((id) => !placed.has(id)).sort((a, b) => (less(a, b) ? -1 : less(b, a) ? 1 : 0));
    for (const id of rest) ordered.push(graph.get(id) as RoomEvent);
  }
  return ordered;
}

const NO_EVENTS: readonly string[] = Object.freeze([]);

/**
 * For each event of `events`, the events of the same set that it reaches
 * through auth_events without passing through another event of the set.
 * What an event outside the set leads to is memoised, so each event of the
 * auth graph is expanded once.
 */
function edgesWithin(events: ReadonlySet<string>, graph: AuthEventGraph): Map<string, readonly string[]> {
  const through = new Map<string, readonly string[]>();
  const onPath = new Set<string>();
  const collect = (authIds: readonly string[]): readonly string[] => {
    const targets = new Set<string>();
    let only: readonly string[] | undefined;
    let parts = 0;
    for (const authId of authIds) {
      if (events.has(authId)) {
        targets.add(authId);
        parts += 2;
      } else {
        const beyond = through.get(authId) ?? NO_EVENTS;
        if (beyond.length > 0) {
          for (const target of beyond) targets.add(target);
          only = beyond;
          parts++;
        }
      }
    }
    if (targets.size === 0) return NO_EVENTS;
    if (parts === 1 && only) return only;
    return [...targets];
  };
  // Settle `through` for every outside event below the set, post-order.
  for (const start of events) {
    const stack: Array<{ id: string; next: number }> = [{ id: start, next: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const authIds = graph.authIds(top.id);
      if (top.next < authIds.length) {
        const authId = authIds[top.next++];
        if (!events.has(authId) && !through.has(authId) && graph.has(authId) && !onPath.has(authId)) {
          onPath.add(authId);
          stack.push({ id: authId, next: 0 });
        }
      } else {
        stack.pop();
        if (top.id !== start) {
          onPath.delete(top.id);
          through.set(top.id, collect(authIds));
        }
      }
    }
  }
  const edges = new Map<string, readonly string[]>();
  for (const id of events) edges.set(id, collect(graph.authIds(id)).filter((target) => target !== id));
  return edges;
}

/**
 * "Iterative auth checks. The iterative auth checks algorithm takes as input
 * an initial room state and a sorted list of state events, and constructs a
 * new room state by iterating through the event list and applying the state
 * event to the room state if the state event is allowed by the authorisation
 * rules. If the state event is not allowed by the authorisation rules, then
 * the event is ignored. If a (event_type, state_key) key that is required for
 * checking the authorisation rules is not present in the state, then the
 * appropriate state event from the event's auth_events is used if the auth
 * event is not rejected."
 */
export function iterativeAuthChecks(events: readonly RoomEvent[], initial: StateMap, graph: AuthEventGraph): StateMap {
  const version = graph.version;
  const state: StateMap = new Map(initial);
  const create = graph.createEvent();
  for (const event of events) {
    if (event.state_key === undefined) continue;
    const authState = graph.authEventsByKey(event, true);
    for (const [type, key] of authEventKeys(event, version)) {
      const current = state.get(stateKey(type, key));
      if (current !== undefined) authState.set(stateKey(type, key), current);
    }
    // Room version 12: the create event is the one the room ID names, whatever the state says.
    if (create) authState.set(CREATE_KEY, create);
    const result = authorizeEvent(event, (type, key) => authState.get(stateKey(type, key)), version);
    if (result.allowed) state.set(stateKey(event.type, event.state_key), event);
  }
  return state;
}

/**
 * "Mainline ordering. Let P = P0 be an m.room.power_levels event. Starting
 * with i = 0, repeatedly fetch P_i+1, the m.room.power_levels event in the
 * auth_events of P_i. [...] The mainline of P0 is the list of events
 * [P0, P1, ..., Pn]. [For another event e = e0, the list e1 ... em of the
 * power levels events reached the same way.] Find the smallest index j ≥ 1
 * for which e_j belongs to the mainline of P. If such a j exists, then
 * e_j = P_i for some unique index i ≥ 0. Otherwise set i = ∞ [...] the
 * mainline position of e is i. [...] x < y if
 *  1. the mainline position of x is greater than the mainline position of y
 *     [...]; or
 *  2. the mainline positions of the events are the same, but x's
 *     origin_server_ts is less than y's origin_server_ts; or
 *  3. [...] x's event_id is less than y's event_id."
 *
 * The position found for each power levels event on the way is memoised, so
 * events sharing the walk to the mainline pay for it once.
 */
export function mainlineOrdering(
  events: readonly RoomEvent[],
  powerLevels: RoomEvent | undefined,
  graph: AuthEventGraph,
): RoomEvent[] {
  if (events.length === 0) return [];
  const mainline = new Map<string, number>();
  for (let p = powerLevels, i = 0; p !== undefined && !mainline.has(p.event_id); p = graph.powerLevelsAuthEvent(p.event_id)) {
    mainline.set(p.event_id, i++);
  }
  // Position reached when the walk arrives at a given power levels event (itself included).
  const reachedFrom = new Map<string, number>();
  const position = (event: RoomEvent): number => {
    const walked: string[] = [];
    let found = Infinity;
    const seen = new Set<string>();
    for (let e = graph.powerLevelsAuthEvent(event.event_id); e !== undefined; e = graph.powerLevelsAuthEvent(e.event_id)) {
      const onMainline = mainline.get(e.event_id);
      if (onMainline !== undefined) {
        found = onMainline;
        break;
      }
      const known = reachedFrom.get(e.event_id);
      if (known !== undefined) {
        found = known;
        break;
      }
      if (seen.has(e.event_id)) break; // a cycle (forged v1/v2 IDs) reaches no mainline event
      seen.add(e.event_id);
      walked.push(e.event_id);
    }
    for (const id of walked) reachedFrom.set(id, found);
    return found;
  };
  const keyed = events.map((event) => ({ event, position: position(event) }));
  keyed.sort((x, y) => {
    if (x.position !== y.position) return x.position > y.position ? -1 : 1;
    if (x.event.origin_server_ts !== y.event.origin_server_ts) {
      return x.event.origin_server_ts - y.event.origin_server_ts;
    }
    return compareCodePoints(x.event.event_id, y.event.event_id);
  });
  return keyed.map((entry) => entry.event);
}
