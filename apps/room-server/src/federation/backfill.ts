/**
 * Backfill: history from before this server joined a room, fetched from a
 * server in the room when a client's backwards /messages reaches the start
 * of local history.
 *
 * Spec: server-server-api "Backfilling and retrieving missing events"
 * (backfill.yaml GET /_matrix/federation/v1/backfill/{roomId}: "the PDUs
 * given in v and the PDUs preceding them", depth first), "Checks performed
 * on receipt of a PDU". Design: docs/federation-design.md "Backfill (as built)".
 *
 * Backfilled events are history: they never change the current state, the
 * forward extremities or memberships, never wake /sync and never reach the
 * room output log. They take *negative* stream positions below the room's
 * lowest one (a per-room counter: the room's lowest position), so every
 * reader that asks for `stream > from` with `from >= 0` (/sync, the output
 * log, push, federation-outbound) never sees them, while /messages, which
 * pages below 0, reads them in order before the rest of the timeline.
 */
import { FederationHttpError, FederationUnreachableError } from '@atrium/federation-client';
import { authEventIds, authEventKeys, authorizeEvent, domainOfId, getRoomVersion, prevEventIds, stateKey, StateResolutionError, type AuthStateLookup, type RoomEvent, type RoomVersion, type StateKey } from '@atrium/matrix';
import { eventOf, NO_STREAM, type EventRecord, type RoomRecord, type RoomStore, type StateIds } from '@atrium/rooms';
import type { FederationInput, FederationInputOptions } from './federation-input';
import { verifyPdus, type VerifiedPdu } from './pdu-verifier';

/** backfill.yaml gives no maximum; servers cap at 100 (Synapse does, and so does our /backfill). */
export const BACKFILL_MAX_LIMIT = 100;
/** The earliest timeline events whose unknown prev_events are the room's backward extremities. */
const EARLIEST_SCAN = 20;
/** backfill.yaml `v`: a few extremities are enough to continue from. */
const MAX_EXTREMITIES = 10;
/** Unknown auth events of a backfilled batch are fetched (/event_auth) for at most this many events. */
const AUTH_FETCH_MAX = 5;
const BACKFILL_TIMEOUT_MS = 30_000;

/** The lowest position a /messages walk reads from (backfilled events are above it). */
export const BACKFILL_FLOOR = Number.MIN_SAFE_INTEGER;

export interface BackfillResult {
  /** Events that entered the timeline (at negative positions). */
  added: number;
  /** The server that answered, when one did. */
  server?: string;
}

const keyOf = (e: { type: string; state_key?: string | null }): StateKey => stateKey(e.type, e.state_key ?? '');

/** Whether a stored event is settled history (in the timeline, or judged: rejected or soft-failed). */
const settled = (r: EventRecord): boolean => r.stream !== NO_STREAM || !!r.rejected || !!r.soft_failed;

export class Backfiller {
  constructor(
    private readonly rooms: RoomStore,
    private readonly input: FederationInput,
    private readonly options: Pick<FederationInputOptions, 'serverName' | 'client' | 'keyRing' | 'serialise' | 'log'>,
  ) {}

  /**
   * The room's backward extremities: prev_events of its earliest timeline
   * events that are not in the timeline themselves (unknown, or outliers such
   * as the state send_join gave). Empty once history reaches m.room.create.
   */
  async backwardExtremities(roomId: string): Promise<string[]> {
    const earliest = await this.rooms.roomEvents(roomId, { from: BACKFILL_FLOOR, to: Number.MAX_SAFE_INTEGER, direction: 'forward', limit: EARLIEST_SCAN });
    const prevs = [...new Set(earliest.flatMap((r) => prevEventIds(eventOf(r))))];
    if (prevs.length === 0) return [];
    const known = new Map((await this.rooms.getEvents(prevs)).map((r) => [r._id, r]));
    return prevs.filter((id) => {
      const r = known.get(id);
      return !r || !settled(r);
    }).slice(0, MAX_EXTREMITIES);
  }

  /** Fetches up to `limit` events before the start of local history and adds them to the timeline. */
  async backfill(roomId: string, limit: number): Promise<BackfillResult> {
    const room = await this.rooms.getRoom(roomId);
    const version = room ? getRoomVersion(room.version) : undefined;
    if (!room || !version) return { added: 0 };
    const extremities = await this.backwardExtremities(roomId);
    if (extremities.length === 0) return { added: 0 };
    const servers = await this.candidateServers(roomId, extremities);
    for (const server of servers) {
      let answer: { pdus?: unknown } | undefined;
      try {
        answer = await this.options.client.request<{ pdus?: unknown }>({
          destination: server,
          method: 'GET',
          path: `/_matrix/federation/v1/backfill/${encodeURIComponent(roomId)}`,
          query: { v: extremities, limit: Math.min(Math.max(limit, 1), BACKFILL_MAX_LIMIT) },
          timeoutMs: BACKFILL_TIMEOUT_MS,
        });
      } catch (err) {
        if (err instanceof FederationHttpError || err instanceof FederationUnreachableError) {
          this.options.log?.(`backfill of ${roomId} from ${server} failed: ${err.message}`);
          continue;
        }
        throw err;
      }
      const raw = Array.isArray(answer?.pdus) ? answer.pdus : [];
      const verified = (await verifyPdus(raw, version, this.options.keyRing, roomId)).filter((v): v is Extract<VerifiedPdu, { ok: true }> => v.ok);
      const events = [...new Map(verified.map((v) => [v.event.event_id, v.event])).values()];
      const stored = new Map((await this.rooms.getEvents(events.map((e) => e.event_id))).map((r) => [r._id, r]));
      const fresh = events.filter((e) => {
        const r = stored.get(e.event_id);
        return !r || !settled(r);
      });
      if (fresh.length === 0) continue;
      const outliers = await this.missingAuthEvents(server, roomId, version, fresh);
      const added = await this.options.serialise(roomId, () => this.store(room, version, outliers, fresh));
      return { added, server };
    }
    return { added: 0 };
  }

  /** The senders' servers of the extremities' children first, then every other server with a joined member; never ours. */
  private async candidateServers(roomId: string, extremities: string[]): Promise<string[]> {
    const servers = new Set<string>();
    const senders = (await this.rooms.getEvents(extremities)).map((r) => r.sender);
    for (const userId of [...senders, ...(await this.rooms.joinedUsers(roomId))]) {
      const domain = domainOfId(userId);
      if (domain) servers.add(domain);
    }
    // The room ID's domain (pre-v12 rooms), the creator's server: a good last resort.
    const colon = roomId.indexOf(':');
    if (colon > 0) servers.add(roomId.slice(colon + 1));
    servers.delete(this.options.serverName);
    return [...servers];
  }

  /** Auth events named by the batch that nobody has: the auth chain of a few events (/event_auth), checked. */
  private async missingAuthEvents(server: string, roomId: string, version: RoomVersion, events: RoomEvent[]): Promise<RoomEvent[]> {
    const inBatch = new Set(events.map((e) => e.event_id));
    const wanted = [...new Set(events.flatMap((e) => authEventIds(e)))].filter((id) => !inBatch.has(id));
    const have = new Set((await this.rooms.getEvents(wanted)).map((r) => r._id));
    const needy = events.filter((e) => authEventIds(e).some((id) => !inBatch.has(id) && !have.has(id))).slice(0, AUTH_FETCH_MAX);
    const out = new Map<string, RoomEvent>();
    for (const e of needy) {
      try {
        const chain = await this.options.client.request<{ auth_chain?: unknown }>({
          destination: server,
          method: 'GET',
          path: `/_matrix/federation/v1/event_auth/${encodeURIComponent(roomId)}/${encodeURIComponent(e.event_id)}`,
          timeoutMs: BACKFILL_TIMEOUT_MS,
        });
        const raw = Array.isArray(chain?.auth_chain) ? chain.auth_chain : [];
        for (const v of await verifyPdus(raw, version, this.options.keyRing, roomId)) {
          if (v.ok && !have.has(v.event.event_id) && !inBatch.has(v.event.event_id)) out.set(v.event.event_id, v.event);
        }
      } catch (err) {
        if (!(err instanceof FederationHttpError || err instanceof FederationUnreachableError)) throw err;
        this.options.log?.(`event_auth of ${e.event_id} from ${server} failed: ${err.message}`);
      }
    }
    return [...out.values()];
  }

  /**
   * Inside the room's serialise: the batch's auth events as outliers, then
   * each event, oldest first, through receipt steps 4 (its auth events) and
   * 5 (the state before it, when the state after its prev events is known:
   * the oldest events of a batch have prev events not fetched yet, so for
   * them step 4 stands alone), at positions below the room's lowest. Step 6
   * (current state) does not apply to history. Returns how many entered the
   * timeline.
   */
  private async store(room: RoomRecord, version: RoomVersion, outliers: RoomEvent[], events: RoomEvent[]): Promise<number> {
    const roomId = room._id;
    if (outliers.length > 0) await this.input.storeOutliers(room, version, outliers);
    // Oldest first: parents before children, so a child finds its parent's state.
    const ordered = [...events].sort((a, b) => a.depth - b.depth || (a.event_id < b.event_id ? -1 : 1));
    // Re-read inside the writer: another backfill may have settled some meanwhile.
    const stored = new Map((await this.rooms.getEvents(ordered.map((e) => e.event_id))).map((r) => [r._id, r]));
    const todo = ordered.filter((e) => {
      const r = stored.get(e.event_id);
      return !r || !settled(r);
    });
    if (todo.length === 0) return 0;
    const [lowest] = await this.rooms.roomEvents(roomId, { from: BACKFILL_FLOOR, to: Number.MAX_SAFE_INTEGER, direction: 'forward', limit: 1 });
    // The per-room backfill counter: below the lowest position the room has (at most -1).
    let next = Math.min(lowest?.stream ?? 0, 0) - todo.length;
    let added = 0;
    for (const event of todo) {
      const existing = stored.get(event.event_id);
      const { rejected, beforeGroup, afterGroup } = await this.check(room, version, event);
      if (rejected !== null) {
        this.options.log?.(`backfilled event ${event.event_id} rejected: ${rejected}`);
        if (existing) await this.rooms.setOutlierState(event.event_id, afterGroup, beforeGroup, rejected);
        else await this.rooms.insertEvent({ event, stream: NO_STREAM, stateGroup: afterGroup, prevStateGroup: beforeGroup, rejected });
        continue;
      }
      const stream = next++;
      if (existing?.outlier) await this.rooms.promoteOutlier(event.event_id, { stream, stateGroup: afterGroup, prevStateGroup: beforeGroup, softFailed: false });
      else await this.rooms.insertEvent({ event, stream, stateGroup: afterGroup, prevStateGroup: beforeGroup });
      // History is redacted as live events are (client-server-api "Redactions"): older events of
      // later batches meet the redactions already stored, and a batch's redactions their targets.
      await this.input.applyRedactions(room, version, event, null);
      added++;
    }
    return added;
  }

  /** Receipt steps 4 and 5 for one backfilled event; the state groups before and after it when its state is known. */
  private async check(
    room: RoomRecord,
    version: RoomVersion,
    event: RoomEvent,
  ): Promise<{ rejected: string | null; beforeGroup: string | null; afterGroup: string | null }> {
    const rejected = await this.input.checkAgainstAuthEvents(room, version, event);
    if (rejected !== null) return { rejected, beforeGroup: null, afterGroup: null };
    const prevIds = prevEventIds(event);
    const prevRecords = await this.rooms.getEvents(prevIds);
    const states: Array<{ group: string | null; ids: ReadonlyMap<StateKey, string> }> = [];
    for (const prev of prevRecords) {
      // Only a state group counts: the line of history below 0 (stateIdsAfter's fallback) holds
      // just the backfilled state events, not the state send_join gave (logged at the join).
      const ids = prev.state_group ? await this.rooms.stateGroupState(prev.state_group) : null;
      if (ids) states.push({ group: prev.state_group ?? null, ids });
    }
    // Step 5 needs the state after every prev event; without it (the batch's oldest events) step 4 stands alone.
    if (event.type !== 'm.room.create' && (states.length === 0 || states.length !== new Set(prevIds).size)) return { rejected: null, beforeGroup: null, afterGroup: null };
    let before: StateIds;
    let beforeGroup: string | null = null;
    const groups = new Set(states.map((s) => s.group));
    if (states.length === 0) before = new Map();
    else if (states.length === 1 || (groups.size === 1 && !groups.has(null))) {
      before = new Map(states[0].ids);
      beforeGroup = states[0].group;
    } else {
      try {
        before = await this.input.resolve(version, states.map((s) => s.ids));
      } catch (err) {
        if (err instanceof StateResolutionError) return { rejected: `state resolution failed: ${err.message}`, beforeGroup: null, afterGroup: null };
        throw err;
      }
    }
    if (beforeGroup === null && (before.size > 0 || event.type !== 'm.room.create')) {
      beforeGroup = await this.rooms.storeStateGroup(room._id, `${event.event_id}/before`, before, states[0]?.group ?? null);
    }
    const wanted = new Set<StateKey>([stateKey('m.room.create', ''), ...authEventKeys(event, version).map(([t, k]) => stateKey(t, k))]);
    const ids = [...wanted].map((k) => before.get(k)).filter((id): id is string => id !== undefined);
    const byId = new Map((await this.rooms.getEvents(ids)).filter((r) => !r.rejected).map((r) => [r._id, eventOf(r)]));
    const lookup: AuthStateLookup = (t, k) => {
      const id = before.get(stateKey(t, k));
      return id === undefined ? undefined : byId.get(id);
    };
    const verdict = authorizeEvent(event, lookup, version);
    if (!verdict.allowed) return { rejected: `${verdict.reason} (auth rule ${verdict.rule}: ${verdict.check}, against the state before the event)`, beforeGroup, afterGroup: beforeGroup };
    const afterGroup = event.state_key !== undefined ? await this.rooms.storeStateDelta(room._id, event.event_id, beforeGroup, new Map([[keyOf(event), event.event_id]])) : beforeGroup;
    return { rejected: null, beforeGroup, afterGroup };
  }
}
