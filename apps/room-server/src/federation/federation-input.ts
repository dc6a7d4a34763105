/**
 * Room-server federation input: PDUs from other servers, checked in the
 * order of server-server-api "Checks performed on receipt of a PDU" and
 * persisted with their state (docs/federation-design.md "Room state with
 * federation", "Room-server federation input (as built)").
 *
 * Each PDU goes through two phases:
 * - `prepare`, outside the room's writer: steps 1–3 (format, signatures,
 *   content hash; pdu-verifier.ts), and the network work the later steps
 *   need: missing prev_events through /get_missing_events, the state at a
 *   gap through /state_ids + /event, missing auth events through /event_auth.
 *   Fetched events are checked the same way. Keys and remote servers are
 *   slow; doing this outside keeps the room's lease short.
 * - `apply`, inside `RoomWriter.serialise(roomId, …)` (one writer per room):
 *   fetched auth/state events stored as outliers, fetched missing events then
 *   the PDU itself through steps 4–6 (auth events, state before, current
 *   state) and persisted: row, state groups, current state (resolution across
 *   the forward extremities), memberships, extremities, redaction, sync wake.
 */
import { FederationHttpError, FederationUnreachableError, type FederationClient, type KeyRing } from '@atrium/federation-client';
import {
  authEventIds,
  authEventKeys,
  authorizeEvent,
  checkAuthEvents,
  domainOfId,
  getRoomVersion,
  prevEventIds,
  redactEvent,
  redactionApplies,
  resolveState,
  serverAclAllows,
  stateKey,
  StateResolutionError,
  type AuthStateLookup,
  type JsonObject,
  type RoomEvent,
  type RoomVersion,
  type StateKey,
  type StateMap,
} from '@atrium/matrix';
import type { Bus } from '@atrium/bus';
import { EVENTS_STREAM, eventOf, NO_STREAM, unsignedOf, SYNC_WAKE_SUBJECT, toClientEvent, type RoomRecord, type RoomStore, type StateIds, type SyncWake } from '@atrium/rooms';
import type { Metrics } from '@atrium/telemetry';
import { verifyPdus, type VerifiedPdu } from './pdu-verifier';
import type { PolicyServers } from './policy-server';

/** server-server-api "Backfilling and retrieving missing events": bounds of our /get_missing_events use (design doc). */
export const MISSING_EVENTS_MAX_ROUNDS = 10;
export const MISSING_EVENTS_MAX_TOTAL = 100;
/** At most this many events fetched one by one (/event) to fill the state at a gap. */
export const GAP_STATE_MAX_FETCH = 1000;
const FETCH_CONCURRENCY = 10;
const FETCH_TIMEOUT_MS = 20_000;

/** Serialises work on one room: RoomWriter.serialise (per-room queue + lease). */
export type RoomSerialiser = <T>(roomId: string, task: () => Promise<T>) => Promise<T>;

export interface FederationInputOptions {
  serverName: string;
  keyRing: KeyRing;
  client: FederationClient;
  serialise: RoomSerialiser;
  metrics?: Metrics;
  /** Logs what was dropped and why (the /send result carries it too). */
  log?: (message: string) => void;
  /** Rooms that use a Policy Server: received events it does not recommend are soft-failed (policy-server.ts). */
  policyServers?: Pick<PolicyServers, 'checkReceived'>;
}

/** The outcome of one event: accepted (possibly soft-failed), or an error for the /send result. */
export interface EventOutcome {
  eventId: string;
  error?: string;
  softFailed?: boolean;
  /** Stream position when it entered the timeline. */
  stream?: number;
}

/** What the network phase gathered for one PDU. */
interface Prepared {
  pdu: VerifiedPdu;
  /** Events fetched for state or auth (stored as outliers), keyed by ID. */
  outliers: Map<string, RoomEvent>;
  /** For each missing prev event whose state was fetched: the IDs of the state before it. */
  gapStates: Map<string, Map<StateKey, string>>;
  /** Missing events from /get_missing_events, oldest first. */
  missing: RoomEvent[];
}

const keyOf = (e: { type: string; state_key?: string | null }): StateKey => stateKey(e.type, e.state_key ?? '');

export class FederationInput {
  private readonly outcomes?: ReturnType<Metrics['counter']>;

  constructor(
    private readonly rooms: RoomStore,
    private readonly bus: Bus,
    private readonly options: FederationInputOptions,
  ) {
    this.outcomes = options.metrics?.counter('roomserver_federation_pdus_total', 'Remote PDUs by outcome (accepted, soft_failed, rejected, dropped)', ['outcome']);
  }

  /**
   * The PDUs of one room from a transaction, in order. Returns the result
   * for every PDU whose event ID could be computed ("PDU Processing
   * Result"). PDUs of a room this server does not know are ignored (their
   * room version, and so their event IDs, are unknown).
   */
  async receivePdus(origin: string, roomId: string, pdus: readonly unknown[]): Promise<Record<string, { error?: string }>> {
    const results: Record<string, { error?: string }> = {};
    const room = await this.rooms.getRoom(roomId);
    const version = room ? this.versionOf(room) : undefined;
    if (!room || !version) return this.receiveOutOfRoom(origin, roomId, pdus);
    const verified = await verifyPdus(pdus, version, this.options.keyRing, roomId);
    // Parents before children: a transaction may list a chain in any order, and a prev event
    // that comes later in the same transaction should not be fetched from the origin.
    // (Array.prototype.sort is stable, so equal depths keep the transaction's order.)
    verified.sort((a, b) => (a.ok ? a.event.depth : 0) - (b.ok ? b.event.depth : 0));
    // server-server-api "Server Access Control Lists": "ACLs MUST be applied to all PDUs on a
    // per-PDU basis. If the sending server is denied access to the room …, the PDU MUST be ignored
    // with an appropriate error included in the response for the respective event ID."
    const denied = !(await this.originAllowed(roomId, origin));
    for (const pdu of verified) {
      if (denied) {
        const id = pdu.ok ? pdu.event.event_id : pdu.eventId;
        if (id !== undefined) results[id] = { error: `Server ${origin} is denied by the room's server ACL` };
        this.outcomes?.inc({ outcome: 'dropped' });
        continue;
      }
      if (!pdu.ok) {
        this.options.log?.(`dropping PDU from ${origin} in ${roomId}: ${pdu.reason}`);
        if (pdu.eventId !== undefined) results[pdu.eventId] = { error: pdu.reason };
        this.outcomes?.inc({ outcome: 'dropped' });
        continue;
      }
      let outcome: EventOutcome;
      try {
        const prepared = await this.prepare(origin, room, version, pdu);
        // "Validating Policy Server signatures": asked (network) before the room's queue, like the fetches above.
        const policy = this.options.policyServers ? await this.options.policyServers.checkReceived(pdu.event, version) : { recommended: true, event: pdu.event };
        prepared.pdu = { ...pdu, event: policy.event };
        outcome = await this.options.serialise(roomId, () => this.apply(origin, room, version, prepared, policy.recommended));
      } catch (err) {
        // An internal failure for one PDU must not lose the rest of the transaction.
        outcome = { eventId: pdu.event.event_id, error: `could not process the event: ${(err as Error).message}` };
      }
      results[outcome.eventId] = outcome.error === undefined ? {} : { error: outcome.error };
    }
    return results;
  }

  /**
   * PDUs of a room this server is not in. The one kind it can take is the
   * end of a local user's pending invite or knock: a leave (invite withdrawn,
   * knock refused) or a ban of that user, which the room's server sends to
   * the user's server as the only place to tell (server-server-api "Leaving
   * Rooms (Rejecting Invites)": the invitee's server is told like any
   * resident; it has no state to authorise against, so it checks the
   * signatures and that the event is about the invited user). The room
   * version comes from the stripped create event kept with the invite or
   * knock. Anything else is ignored: without the room version its event IDs
   * cannot even be computed.
   */
  private async receiveOutOfRoom(origin: string, roomId: string, pdus: readonly unknown[]): Promise<Record<string, { error?: string }>> {
    const results: Record<string, { error?: string }> = {};
    const pending = (await this.rooms.membersOfRoom(roomId, ['invite', 'knock'])).filter((m) => m.user_id.endsWith(`:${this.options.serverName}`));
    if (pending.length === 0) {
      this.options.log?.(`ignoring ${pdus.length} PDUs from ${origin} for unknown room ${roomId}`);
      return results;
    }
    const record = await this.rooms.getEvent(pending[0].event_id);
    const unsigned = record ? unsignedOf(record) : {};
    const stripped = unsigned['invite_room_state'] ?? unsigned['knock_room_state'];
    let versionId = '1';
    if (Array.isArray(stripped)) {
      for (const entry of stripped) {
        if (entry && typeof entry === 'object' && !Array.isArray(entry) && entry['type'] === 'm.room.create') {
          const content = entry['content'];
          if (content && typeof content === 'object' && !Array.isArray(content) && typeof content['room_version'] === 'string') versionId = content['room_version'];
        }
      }
    }
    const version = getRoomVersion(versionId);
    if (!version) return results;
    // Who may end it: for an invite, a user of the inviting server (the only server this one
    // knows to be in the room); for a knock, a user of the server that sends it.
    const waiting = new Map(pending.map((m) => [m.user_id, m.membership === 'invite' ? domainOfId(m.sender) : origin]));
    for (const pdu of await verifyPdus(pdus, version, this.options.keyRing, roomId)) {
      if (!pdu.ok) {
        if (pdu.eventId !== undefined) results[pdu.eventId] = { error: pdu.reason };
        continue;
      }
      const e = pdu.event;
      const membership = e.type === 'm.room.member' ? e.content['membership'] : undefined;
      const endsPending = e.state_key !== undefined && waiting.has(e.state_key) && (membership === 'leave' || membership === 'ban') && waiting.get(e.state_key) === domainOfId(e.sender);
      if (!endsPending) {
        results[e.event_id] = { error: `this server is not in room ${roomId}` };
        continue;
      }
      await this.options.serialise(roomId, async () => {
        if (await this.rooms.getEvent(e.event_id)) return;
        const position = await this.rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
          await this.rooms.insertEvent({ event: e, stream });
          return stream;
        });
        await this.rooms.setMembership(e, position);
        await this.bus.notify(SYNC_WAKE_SUBJECT, { stream: EVENTS_STREAM, position, room_id: roomId, user_ids: [e.state_key as string] } satisfies SyncWake);
      });
      this.outcomes?.inc({ outcome: 'accepted' });
      results[e.event_id] = {};
    }
    return results;
  }

  /** Whether the room's current m.room.server_acl lets `server` in (no ACL: yes). */
  async originAllowed(roomId: string, server: string): Promise<boolean> {
    const acl = (await this.rooms.currentStateEventsFor(roomId, [['m.room.server_acl', '']])).get(stateKey('m.room.server_acl', ''));
    return serverAclAllows(acl?.content, server);
  }

  private versionOf(room: RoomRecord): RoomVersion | undefined {
    return getRoomVersion(room.version);
  }

  // ---- the network phase ----

  private async prepare(origin: string, room: RoomRecord, version: RoomVersion, pdu: Extract<VerifiedPdu, { ok: true }>): Promise<Prepared> {
    const prepared: Prepared = { pdu, outliers: new Map(), gapStates: new Map(), missing: [] };
    const event = pdu.event;
    const existing = await this.rooms.getEvent(event.event_id);
    if (existing && !existing.outlier) return prepared;

    // Missing prev_events: /get_missing_events from the origin, bounded.
    const fetched = new Map<string, RoomEvent>();
    const known = async (ids: string[]): Promise<Set<string>> => new Set((await this.rooms.getEvents(ids)).filter((r) => !r.outlier || r.state_group).map((r) => r._id));
    const missingPrevsOf = async (events: RoomEvent[]): Promise<Map<string, string[]>> => {
      const wanted = [...new Set(events.flatMap((e) => prevEventIds(e)))].filter((id) => !fetched.has(id));
      const have = await known(wanted);
      const out = new Map<string, string[]>();
      for (const e of events) {
        const gaps = prevEventIds(e).filter((id) => !fetched.has(id) && !have.has(id));
        if (gaps.length > 0) out.set(e.event_id, gaps);
      }
      return out;
    };
    let gaps = await missingPrevsOf([event]);
    if (gaps.size > 0) {
      const earliest = (await this.rooms.forwardExtremities(room._id)).map((x) => x.event_id);
      for (let round = 0; round < MISSING_EVENTS_MAX_ROUNDS && gaps.size > 0 && fetched.size < MISSING_EVENTS_MAX_TOTAL; round++) {
        const latest = [...gaps.keys()];
        const answer = await this.fetch<{ events?: unknown }>(origin, {
          method: 'POST',
          path: `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(room._id)}`,
          body: { earliest_events: earliest, latest_events: latest, limit: Math.min(10, MISSING_EVENTS_MAX_TOTAL - fetched.size), min_depth: 0 },
        });
        const raw = Array.isArray(answer?.events) ? answer.events : [];
        const checked = (await verifyPdus(raw, version, this.options.keyRing, room._id)).filter((v): v is Extract<VerifiedPdu, { ok: true }> => v.ok);
        const fresh = checked.map((v) => v.event).filter((e) => !fetched.has(e.event_id) && e.event_id !== event.event_id);
        if (fresh.length === 0) break;
        for (const e of fresh) fetched.set(e.event_id, e);
        gaps = await missingPrevsOf([event, ...fetched.values()]);
      }
    }
    prepared.missing = [...fetched.values()].sort((a, b) => a.depth - b.depth);

    // A gap remains: the state at each missing prev event, fetched as outliers.
    const allGaps = [...new Set([...gaps.values()].flat())];
    let budget = GAP_STATE_MAX_FETCH;
    for (const prevId of allGaps) {
      const ids = await this.fetch<{ pdu_ids?: unknown; auth_chain_ids?: unknown }>(origin, {
        method: 'GET',
        path: `/_matrix/federation/v1/state_ids/${encodeURIComponent(room._id)}`,
        query: { event_id: prevId },
      });
      if (!ids || !Array.isArray(ids.pdu_ids) || !Array.isArray(ids.auth_chain_ids)) continue;
      const stateIds = ids.pdu_ids.filter((x): x is string => typeof x === 'string');
      const chainIds = ids.auth_chain_ids.filter((x): x is string => typeof x === 'string');
      const wanted = [...new Set([prevId, ...stateIds, ...chainIds])];
      const have = new Set((await this.rooms.getEvents(wanted)).map((r) => r._id));
      const toFetch = wanted.filter((id) => !have.has(id) && !prepared.outliers.has(id)).slice(0, budget);
      budget -= toFetch.length;
      for (const e of await this.fetchEvents(origin, room._id, version, toFetch)) prepared.outliers.set(e.event_id, e);
      // The state before the missing event, by key: from the fetched or stored events.
      const before = new Map<StateKey, string>();
      const stored = new Map((await this.rooms.getEvents(stateIds)).map((r) => [r._id, eventOf(r)]));
      for (const id of stateIds) {
        const e = prepared.outliers.get(id) ?? stored.get(id);
        if (e && e.state_key !== undefined) before.set(keyOf(e), id);
      }
      if (prepared.outliers.has(prevId) || have.has(prevId)) prepared.gapStates.set(prevId, before);
    }

    // Auth events nobody has: the PDU's auth chain from the origin (/event_auth).
    const needAuth = [event, ...prepared.missing, ...prepared.outliers.values()].flatMap((e) => authEventIds(e));
    const unknownAuth = needAuth.filter((id) => !prepared.outliers.has(id) && !fetched.has(id));
    const haveAuth = new Set((await this.rooms.getEvents([...new Set(unknownAuth)])).map((r) => r._id));
    if (unknownAuth.some((id) => !haveAuth.has(id))) {
      const chain = await this.fetch<{ auth_chain?: unknown }>(origin, {
        method: 'GET',
        path: `/_matrix/federation/v1/event_auth/${encodeURIComponent(room._id)}/${encodeURIComponent(event.event_id)}`,
      });
      const raw = Array.isArray(chain?.auth_chain) ? chain.auth_chain : [];
      for (const v of await verifyPdus(raw, version, this.options.keyRing, room._id)) {
        if (v.ok && !haveAuth.has(v.event.event_id)) prepared.outliers.set(v.event.event_id, v.event);
      }
    }
    return prepared;
  }

  /** A federation request whose failure is an absent answer (the checks then reject or error). */
  private async fetch<T>(origin: string, request: { method: 'GET' | 'POST'; path: string; query?: Record<string, string>; body?: JsonObject }): Promise<T | undefined> {
    try {
      return await this.options.client.request<T>({ destination: origin, timeoutMs: FETCH_TIMEOUT_MS, ...request });
    } catch (err) {
      if (err instanceof FederationHttpError || err instanceof FederationUnreachableError) {
        this.options.log?.(`${request.method} ${request.path} to ${origin} failed: ${err.message}`);
        return undefined;
      }
      throw err;
    }
  }

  /** GET /event/{eventId} for each ID (a few at a time), checked (steps 1–3); bad ones are left out. */
  async fetchEvents(origin: string, roomId: string, version: RoomVersion, ids: readonly string[]): Promise<RoomEvent[]> {
    const out: RoomEvent[] = [];
    for (let i = 0; i < ids.length; i += FETCH_CONCURRENCY) {
      const answers = await Promise.all(
        ids.slice(i, i + FETCH_CONCURRENCY).map((id) => this.fetch<{ pdus?: unknown }>(origin, { method: 'GET', path: `/_matrix/federation/v1/event/${encodeURIComponent(id)}` })),
      );
      const raw = answers.flatMap((a) => (Array.isArray(a?.pdus) ? a.pdus.slice(0, 1) : []));
      for (const v of await verifyPdus(raw, version, this.options.keyRing, roomId)) {
        if (v.ok && ids.includes(v.event.event_id)) out.push(v.event);
      }
    }
    return out;
  }

  // ---- the writer phase (inside serialise) ----

  private async apply(origin: string, room: RoomRecord, version: RoomVersion, prepared: Prepared, recommended = true): Promise<EventOutcome> {
    if (prepared.outliers.size > 0) await this.storeOutliers(room, version, [...prepared.outliers.values()]);
    for (const [prevId, before] of prepared.gapStates) await this.storeGapState(room, prevId, before);
    for (const e of prepared.missing) {
      const outcome = await this.acceptEvent(room, version, e);
      if (outcome.error) this.options.log?.(`fetched missing event ${e.event_id} from ${origin}: ${outcome.error}`);
    }
    const pdu = prepared.pdu as Extract<VerifiedPdu, { ok: true }>;
    return this.acceptEvent(room, version, pdu.event, { recommended });
  }

  /**
   * Stores events fetched for state or auth as outliers, each authorised
   * against its own auth events (receipt step 4; the state before an outlier
   * is unknown), in auth order. An event whose auth events are missing or
   * rejected is stored as rejected. Must run inside the room's serialise.
   * Exposed for the membership handshakes (send_join's state and auth chain).
   */
  async storeOutliers(room: RoomRecord, version: RoomVersion, events: readonly RoomEvent[]): Promise<Map<string, { rejected: string | null }>> {
    const result = new Map<string, { rejected: string | null }>();
    const pending = new Map(events.map((e) => [e.event_id, e]));
    const stored = new Map((await this.rooms.getEvents([...pending.keys()])).map((r) => [r._id, r]));
    for (const [id, record] of stored) {
      result.set(id, { rejected: record.rejected ?? null });
      pending.delete(id);
    }
    // Kahn's order over auth_events: an event goes once every auth event it names is settled.
    // Room version 12 names no create event there, yet the rules read it: it goes first.
    const createId = version.roomIdFromCreateEvent ? `$${room._id.slice(1)}` : undefined;
    let progressed = true;
    while (pending.size > 0 && progressed) {
      progressed = false;
      for (const [id, e] of pending) {
        const auth = createId !== undefined && id !== createId ? [...authEventIds(e), createId] : authEventIds(e);
        if (auth.some((a) => pending.has(a))) continue;
        const rejected = await this.checkAgainstAuthEvents(room, version, e);
        await this.rooms.insertEvent({ event: e, stream: NO_STREAM, outlier: rejected === null, rejected });
        result.set(id, { rejected });
        pending.delete(id);
        progressed = true;
      }
    }
    // A cycle in auth_events cannot be authorised.
    for (const [id, e] of pending) {
      await this.rooms.insertEvent({ event: e, stream: NO_STREAM, rejected: 'auth_events form a cycle' });
      result.set(id, { rejected: 'auth_events form a cycle' });
    }
    return result;
  }

  /**
   * Records the state at a missing prev event whose state was fetched
   * (`before`: the state before it, by IDs): groups `<id>/before` and `<id>`
   * (after), set on the event's outlier row, so events that name it as a prev
   * event find their state. Inside serialise.
   */
  async storeGapState(room: RoomRecord, eventId: string, before: ReadonlyMap<StateKey, string>): Promise<void> {
    const record = await this.rooms.getEvent(eventId);
    if (!record || record.state_group) return;
    const beforeGroup = await this.rooms.storeStateGroup(room._id, `${eventId}/before`, before, null);
    let afterGroup = beforeGroup;
    if (record.state_key !== null && !record.rejected) {
      afterGroup = await this.rooms.storeStateDelta(room._id, eventId, beforeGroup, new Map([[keyOf(record), eventId]]));
    }
    await this.rooms.setOutlierState(eventId, afterGroup, beforeGroup);
  }

  /** Receipt step 4 (and the auth_events rules): null when it passes, else the reason. Also used by backfill.ts. */
  async checkAgainstAuthEvents(room: RoomRecord, version: RoomVersion, event: RoomEvent): Promise<string | null> {
    const ids = authEventIds(event);
    const records = await this.rooms.getEvents(ids);
    if (new Set(records.map((r) => r._id)).size !== new Set(ids).size) return 'auth events are missing';
    // auth_events rule 3: "If there are entries which were themselves rejected …, reject."
    const rejected = records.find((r) => r.rejected);
    if (rejected) return `auth event ${rejected._id} was rejected`;
    const authEvents = records.map(eventOf);
    const listCheck = checkAuthEvents(event, authEvents, version);
    if (!listCheck.ok) return `${listCheck.reason} (auth rule ${listCheck.rule})`;
    const byKey = new Map(authEvents.map((e) => [keyOf(e), e]));
    // Room version 12: the create event is not an auth event; the rules read it through the lookup.
    if (version.roomIdFromCreateEvent && event.type !== 'm.room.create' && !byKey.has(stateKey('m.room.create', ''))) {
      const create = await this.rooms.getEvent(`$${event.room_id.slice(1)}`);
      if (create && !create.rejected) byKey.set(stateKey('m.room.create', ''), eventOf(create));
    }
    const verdict = authorizeEvent(event, (t, k) => byKey.get(stateKey(t, k)), version);
    return verdict.allowed ? null : `${verdict.reason} (auth rule ${verdict.rule}: ${verdict.check})`;
  }

  /** Loads the events of a state by IDs, noting which are rejected (for state resolution). */
  private async loadState(ids: ReadonlyMap<StateKey, string>, rejected: Set<string>): Promise<StateMap> {
    const records = await this.rooms.getEvents([...ids.values()]);
    const out: StateMap = new Map();
    for (const r of records) {
      if (r.rejected) rejected.add(r._id);
      if (r.state_key !== null) out.set(keyOf(r), eventOf(r));
    }
    return out;
  }

  /** resolveState over states by IDs, with the store as the auth event loader. Also used by backfill.ts. */
  async resolve(version: RoomVersion, states: ReadonlyArray<ReadonlyMap<StateKey, string>>): Promise<StateIds> {
    const rejected = new Set<string>();
    const stateSets: StateMap[] = [];
    for (const ids of states) stateSets.push(await this.loadState(ids, rejected));
    const resolved = await resolveState({
      version,
      stateSets,
      loadEvents: async (ids) => {
        const map = new Map<string, RoomEvent>();
        for (const r of await this.rooms.getEvents(ids)) {
          if (r.rejected) rejected.add(r._id);
          map.set(r._id, eventOf(r));
        }
        return map;
      },
      isRejected: (id) => rejected.has(id),
    });
    return new Map([...resolved].map(([k, e]) => [k, e.event_id]));
  }

  /**
   * Receipt steps 4–6 and persistence for a verified event. Must run inside
   * the room's serialise. `event` is what steps 1–3 left (the redacted form
   * after a content hash mismatch).
   * Exposed for the membership handshakes (a remote join after send_join).
   */
  async acceptEvent(room: RoomRecord, version: RoomVersion, event: RoomEvent, policy: { recommended: boolean } = { recommended: true }): Promise<EventOutcome> {
    const eventId = event.event_id;
    const existing = await this.rooms.getEvent(eventId);
    if (existing && !existing.outlier) {
      return existing.rejected ? { eventId, error: `rejected: ${existing.rejected}` } : { eventId, softFailed: existing.soft_failed };
    }
    if (existing?.rejected) return { eventId, error: `rejected: ${existing.rejected}` };

    // The state before the event: the state after its prev event, or the resolution of several.
    const prevIds = prevEventIds(event);
    const prevRecords = await this.rooms.getEvents(prevIds);
    const foreign = prevRecords.find((r) => r.room_id !== event.room_id);
    if (foreign) return { eventId, error: `prev event ${foreign._id} belongs to another room` };
    const prevStates: Array<{ group: string | null; ids: ReadonlyMap<StateKey, string> }> = [];
    for (const prev of prevRecords) {
      const ids = prev.state_group ? await this.rooms.stateGroupState(prev.state_group) : await this.rooms.stateIdsAfter(prev._id);
      if (!ids) return { eventId, error: `the state after prev event ${prev._id} is unknown` };
      prevStates.push({ group: prev.state_group ?? null, ids });
    }
    if (event.type !== 'm.room.create' && (prevRecords.length !== new Set(prevIds).size || prevStates.length === 0)) {
      return { eventId, error: 'prev events are missing and their state could not be fetched' };
    }
    let stateBefore: StateIds;
    let beforeGroup: string | null;
    const groups = new Set(prevStates.map((s) => s.group));
    if (prevStates.length === 0) {
      stateBefore = new Map();
      beforeGroup = null;
    } else if (prevStates.length === 1 || (groups.size === 1 && !groups.has(null))) {
      stateBefore = new Map(prevStates[0].ids);
      beforeGroup = prevStates[0].group;
    } else {
      try {
        stateBefore = await this.resolve(version, prevStates.map((s) => s.ids));
      } catch (err) {
        if (err instanceof StateResolutionError) return { eventId, error: `state resolution failed: ${err.message}` };
        throw err;
      }
      beforeGroup = null;
    }
    if (beforeGroup === null && (stateBefore.size > 0 || event.type !== 'm.room.create')) {
      beforeGroup = await this.rooms.storeStateGroup(room._id, `${eventId}/before`, stateBefore, prevStates[0]?.group ?? null);
    }

    // Step 4: against its auth events.
    let rejected = await this.checkAgainstAuthEvents(room, version, event);
    // Step 5: against the state before it. The rules read only the entries the auth events
    // selection names (plus the create event), so only those are loaded, and the event's own
    // key for unsigned.prev_content.
    const authKeys: Array<[string, string]> = [['m.room.create', ''], ...authEventKeys(event, version).map(([t, k]): [string, string] => [t, k])];
    let beforeEvents: Map<string, RoomEvent> | undefined;
    if (rejected === null) {
      const wanted = new Set(authKeys.map(([t, k]) => stateKey(t, k)));
      if (event.state_key !== undefined) wanted.add(keyOf(event));
      const ids = [...wanted].map((k) => stateBefore.get(k)).filter((id): id is string => id !== undefined);
      beforeEvents = new Map((await this.rooms.getEvents(ids)).filter((r) => !r.rejected).map((r) => [r._id, eventOf(r)]));
      const lookup: AuthStateLookup = (t, k) => {
        const id = stateBefore.get(stateKey(t, k));
        return id === undefined ? undefined : beforeEvents?.get(id);
      };
      const verdict = authorizeEvent(event, lookup, version);
      if (!verdict.allowed) rejected = `${verdict.reason} (auth rule ${verdict.rule}: ${verdict.check}, against the state before the event)`;
    }
    // Step 6: against the current state (soft failure).
    let softFailed = false;
    if (rejected === null && event.type !== 'm.room.create') {
      // The same entries of the current state (one read of the small current-state records);
      // when they are the very events of the state before, step 5's verdict stands.
      const currentEvents = await this.rooms.currentStateEventsFor(room._id, authKeys);
      const same = authKeys.every(([t, k]) => currentEvents.get(stateKey(t, k))?.event_id === stateBefore.get(stateKey(t, k)));
      if (!same) softFailed = !authorizeEvent(event, (t, k) => currentEvents.get(stateKey(t, k)), version).allowed;
    }
    // "Validating Policy Server signatures": not recommended by the room's Policy Server → soft fail.
    if (rejected === null && !policy.recommended) softFailed = true;

    // Persist. A rejected event keeps the state before it ("the state after" a rejected event
    // is the state before it, so events naming it as a prev event still have a state).
    const afterGroup =
      rejected === null && event.state_key !== undefined
        ? await this.rooms.storeStateDelta(room._id, eventId, beforeGroup, new Map([[keyOf(event), eventId]]))
        : beforeGroup;
    const unsigned: JsonObject = {};
    if (event.state_key !== undefined && rejected === null) {
      const replacedId = stateBefore.get(keyOf(event));
      const replaced = replacedId ? (beforeEvents?.get(replacedId) ?? (await this.rooms.getEvent(replacedId).then((r) => (r ? eventOf(r) : undefined)))) : undefined;
      if (replaced) {
        unsigned['prev_content'] = replaced.content;
        unsigned['prev_sender'] = replaced.sender;
        unsigned['replaces_state'] = replaced.event_id;
      }
    }
    if (rejected !== null || softFailed) {
      if (existing?.outlier) {
        if (rejected !== null) await this.rooms.setOutlierState(eventId, afterGroup, beforeGroup, rejected);
        else await this.rooms.promoteOutlier(eventId, { stream: NO_STREAM, stateGroup: afterGroup, prevStateGroup: beforeGroup, softFailed: true });
      } else {
        await this.rooms.insertEvent({ event, stream: NO_STREAM, unsigned, stateGroup: afterGroup, prevStateGroup: beforeGroup, rejected, softFailed });
      }
      this.outcomes?.inc({ outcome: rejected !== null ? 'rejected' : 'soft_failed' });
      return rejected !== null ? { eventId, error: `rejected: ${rejected}` } : { eventId, softFailed: true };
    }

    const position = await this.rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
      await this.rooms.markPending(room._id, stream);
      if (existing?.outlier) {
        await this.rooms.promoteOutlier(eventId, { stream, stateGroup: afterGroup, prevStateGroup: beforeGroup, softFailed: false });
      } else {
        await this.rooms.insertEvent({ event, stream, unsigned, stateGroup: afterGroup, prevStateGroup: beforeGroup });
      }
      return stream;
    });
    await this.applyAccepted(room, version, event, position, afterGroup);
    this.outcomes?.inc({ outcome: 'accepted' });
    return { eventId, stream: position };
  }

  /**
   * The effects of an accepted event: forward extremities, current state (the
   * resolution across the extremities), memberships that changed, the
   * redaction it makes, the room's applied position, sync wake.
   */
  private async applyAccepted(room: RoomRecord, version: RoomVersion, event: RoomEvent, position: number, afterGroup: string | null): Promise<void> {
    const prevIds = prevEventIds(event);
    const before = await this.rooms.forwardExtremities(room._id);
    await this.rooms.updateExtremities(event, prevIds);
    const wakeUsers: string[] = [];
    // The common case: the event extends the room's only extremity. The current state was the
    // state after that event, which is the state before this one, so only this event's own
    // entry changes: no resolution, no read of the whole current state.
    if (afterGroup && prevIds.length === 1 && before.length === 1 && before[0].event_id === prevIds[0]) {
      if (event.state_key !== undefined) {
        await this.rooms.setCurrentState(event, position);
        if (event.type === 'm.room.member') await this.rooms.setMembership(event, position);
      }
      await this.rooms.setCurrentStateGroup(room._id, afterGroup);
      await this.finishAccepted(room, version, event, position, wakeUsers, null);
      return;
    }
    const extremities = await this.rooms.forwardExtremities(room._id);
    let currentIds: StateIds;
    let currentGroup: string | null;
    const onlyThis = extremities.length === 1 && extremities[0].event_id === event.event_id;
    if (onlyThis && afterGroup) {
      currentIds = new Map((await this.rooms.stateGroupState(afterGroup)) ?? []);
      currentGroup = afterGroup;
    } else {
      const states: Array<ReadonlyMap<StateKey, string>> = [];
      for (const x of extremities) {
        const ids = await this.rooms.stateIdsAfter(x.event_id);
        if (ids) states.push(ids);
      }
      try {
        currentIds = await this.resolve(version, states);
      } catch (err) {
        if (!(err instanceof StateResolutionError)) throw err;
        // Unresolvable extremities (should not happen for one room): keep the state after this event.
        currentIds = new Map(afterGroup ? ((await this.rooms.stateGroupState(afterGroup)) ?? []) : []);
      }
      currentGroup = await this.rooms.storeStateGroup(room._id, `${event.event_id}/current`, currentIds, afterGroup);
    }
    const newRecord = await this.rooms.getEvent(event.event_id);
    const changed = await this.rooms.replaceCurrentState(room._id, currentIds, new Map(newRecord ? [[newRecord._id, newRecord]] : []));
    for (const record of changed) {
      if (record.type !== 'm.room.member' || record.state_key === null) continue;
      await this.rooms.setMembership(eventOf(record), record.stream === NO_STREAM ? position : record.stream);
      wakeUsers.push(record.state_key);
    }
    if (currentGroup) await this.rooms.setCurrentStateGroup(room._id, currentGroup);
    await this.finishAccepted(room, version, event, position, wakeUsers, currentIds);
  }

  /** The redaction an accepted event makes, the room's applied position, sync wake. */
  private async finishAccepted(room: RoomRecord, version: RoomVersion, event: RoomEvent, position: number, wakeUsers: string[], current: StateIds | null): Promise<void> {
    await this.applyRedactions(room, version, event, current);
    await this.rooms.markApplied(room._id, position);
    const wake: SyncWake = { stream: EVENTS_STREAM, position, room_id: room._id };
    if (event.type === 'm.room.member' && event.state_key !== undefined) wakeUsers.push(event.state_key);
    if (wakeUsers.length > 0) wake.user_ids = [...new Set(wakeUsers)];
    await this.bus.notify(SYNC_WAKE_SUBJECT, wake);
  }

  /**
   * The redactions a newly stored event takes part in: the one it makes, or
   * those stored before it that name it. A redaction may come before the
   * event it redacts: their order across servers is not guaranteed, and
   * backfill stores older events after newer ones. Also used by backfill.ts.
   */
  async applyRedactions(room: RoomRecord, version: RoomVersion, event: RoomEvent, current: StateIds | null): Promise<void> {
    if (event.type === 'm.room.redaction') {
      await this.applyRedaction(room, version, event, current);
      return;
    }
    for (const earlier of await this.rooms.redactionsOf(event.event_id)) await this.applyRedaction(room, version, eventOf(earlier), null);
  }

  /**
   * A remote m.room.redaction redacts its target when the rules let it:
   * v1–v2 authorised it already (the auth rules check the domain); v3+
   * decide now (v3-handling-redactions.md: same sender domain, or the redact level).
   */
  private async applyRedaction(room: RoomRecord, version: RoomVersion, event: RoomEvent, current: StateIds | null): Promise<void> {
    if (event.type !== 'm.room.redaction') return;
    const targetId = version.redactsInContent ? event.content['redacts'] : event.redacts;
    if (typeof targetId !== 'string') return;
    const target = await this.rooms.getEvent(targetId);
    if (!target || target.room_id !== room._id || target.redacted || target.rejected) return;
    if (version.redactionCheckedAtDisplay) {
      // The rule reads the power levels (and the create event for v12 creators) of the current state.
      const keys: Array<[string, string]> = [['m.room.create', ''], ['m.room.power_levels', '']];
      const stateEvents = current
        ? new Map((await this.rooms.getEvents(keys.map(([t, k]) => current.get(stateKey(t, k))).filter((id): id is string => id !== undefined))).map((r) => [keyOf(r), eventOf(r)]))
        : await this.rooms.currentStateEventsFor(room._id, keys);
      if (!redactionApplies(event, eventOf(target), (t, k) => stateEvents.get(stateKey(t, k)), version)) return;
    }
    const record = await this.rooms.getEvent(event.event_id);
    const because = record ? toClientEvent(record, { now: event.origin_server_ts }) : null;
    if (because) delete because.unsigned['age'];
    await this.rooms.applyRedaction(target._id, redactEvent(eventOf(target), version), event.event_id, (because ?? {}) as unknown as JsonObject);
  }
}
