/**
 * The writer of local events: build, hash, sign, authorise, persist, wake.
 * ARCHITECTURE.md "Data flow" (client sends a message) and rule 1 (one writer
 * per room, inputs in arrival order).
 *
 * Serialisation: every input to a room runs in this process's queue for that
 * room, so prev_events, depth and current state are read and written without
 * interleaving. Across room-server replicas a NATS queue group spreads
 * requests by load, not by room, so two replicas could receive inputs of one
 * room at once. Each write therefore also holds a per-room lease in the
 * shared cache (Redis in the cluster: SET NX PX), and a replica that finds the
 * lease taken waits for it. That keeps one writer per room at a time (rule 1)
 * on any number of replicas; what it does not give is strict arrival order
 * between inputs that reached different replicas at the same moment, which
 * routing by room (subjects partitioned by a hash of the room ID, each
 * partition owned by one replica) would add. Known limits: a lease outlives a
 * crashed holder by ROOM_LEASE_TTL_MS, and its release is check-then-delete
 * (the cache port has no compare-and-delete), safe as long as a write takes
 * less than the TTL, which a single event write does by orders of magnitude.
 */
import { randomBytes } from 'node:crypto';
import type { Bus } from '@atrium/bus';
import type { Cache } from '@atrium/cache';
import type { Metrics } from '@atrium/telemetry';
import { Errors, MatrixError } from '@atrium/http';
import {
  authEventKeys,
  authorizeEvent,
  buildPdu,
  CanonicalJsonError,
  eventReference,
  getRoomVersion,
  domainOfId,
  isValidUserId,
  redactEvent,
  readPowerLevels,
  requiredPowerLevel,
  redactionApplies,
  userPowerLevel,
  signPdu,
  POLICY_EVENT_TYPE,
  stateKey,
  toRoomEvent,
  toWirePdu,
  type AuthStateLookup,
  type EventRefInput,
  type JsonObject,
  type JsonSigner,
  type RoomEvent,
  type RoomVersion,
} from '@atrium/matrix';
import { EVENTS_STREAM, eventOf, SYNC_WAKE_SUBJECT, toClientEvent, type EventRecord, type RoomRecord, type RoomStore, type SyncWake } from '@atrium/rooms';
import { INVITE_BLOCKED } from '@atrium/user-data';
import type { PolicyServers } from './federation/policy-server';
import type { CreateRoomRequest, SendEventRequest, SendEventResponse, StateDraft, UpgradeRoomRequest } from './room-server.api';

/** server-server-api "Size limits": a PDU is at most 65536 bytes in canonical JSON. */
const MAX_PDU_BYTES = 65_536;
/** State the spec recommends copying to the replacement room ("Room Upgrades", step 3), plus the canonical alias, whose aliases move with it. */
const TRANSFERABLE_STATE = [
  'm.room.server_acl',
  'm.room.encryption',
  'm.room.name',
  'm.room.avatar',
  'm.room.topic',
  'm.room.guest_access',
  'm.room.history_visibility',
  'm.room.join_rules',
  'm.room.canonical_alias',
] as const;

/** server-server-api "Size limits": sender, room_id, event_id, type and state_key. */
const MAX_FIELD_BYTES = 255;
/** At most this many forward extremities become prev_events (the spec suggests a bound; Synapse uses 10). */
const MAX_PREV_EVENTS = 10;

/** What sync.wake carries: defined in libs/rooms, re-exported for this app's users. */
export { SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/rooms';

export interface RoomWriterOptions {
  serverName: string;
  signingKey: JsonSigner;
  /** Whether a local user is a guest (to apply the guest access rules); without it guests are not tracked. */
  isGuest?: (userId: string) => Promise<boolean>;
  /** Prometheus metrics of the process (ARCHITECTURE.md "Observability": room-server input lag). */
  metrics?: Metrics;
  /** Shared cache for the cross-replica room lease; without it only the in-process queue serialises. */
  cache?: Cache;
  now?: () => number;
  /**
   * Federation: a local user's invite of a user of another server goes to the
   * invitee's server first (PUT /v2/invite, server-server-api "Inviting to a
   * room"), which answers with its signature added; the returned event is
   * what gets persisted. Called after the auth checks, inside the room's queue.
   */
  remoteInvite?: (event: RoomEvent, version: RoomVersion) => Promise<RoomEvent>;
  /** Whether a local user blocks invites (client-server-api "Invite permission"); without it nobody does. */
  invitesBlocked?: (userId: string) => Promise<boolean>;
  /** Rooms that use a Policy Server have it sign each local event (federation/policy-server.ts); without it nobody is asked. */
  policyServers?: Pick<PolicyServers, 'signLocal'>;
  /**
   * A local user's join is stored (local or through another server; not a
   * join over a join): E2eeService.deviceListsOnJoin sends their device list
   * to the room's servers not yet receiving it. Best effort: the join stands.
   */
  localJoin?: (userId: string, roomId: string) => Promise<void>;
}

/** How long a room lease lasts if its holder never releases it (crash). */
export const ROOM_LEASE_TTL_MS = 30_000;
/** How long a writer waits for another replica's lease before giving up (503 to the client). */
const ROOM_LEASE_WAIT_MS = 55_000;

const roomCode = (status: number, errcode: string, message: string): MatrixError => new MatrixError(status, errcode, message);
const inviteBlocked = (userId: string): MatrixError => roomCode(403, INVITE_BLOCKED, `${userId} does not accept invites`);

export class RoomWriter {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly now: () => number;

  /** Time an input waited for its room (queue and lease) before its write began. */
  private readonly inputLag?: ReturnType<Metrics['histogram']>;
  /** Local events by outcome: accepted, or refused by the auth rules or checks. */
  private readonly outcomes?: ReturnType<Metrics['counter']>;

  constructor(
    private readonly rooms: RoomStore,
    private readonly bus: Bus,
    private readonly options: RoomWriterOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.inputLag = options.metrics?.histogram('roomserver_input_lag_seconds', 'Time a room-server input waited for its room (per-room queue and lease)', ['kind']);
    this.outcomes = options.metrics?.counter('roomserver_events_total', 'Local events the room server wrote or refused, by outcome', ['outcome']);
  }

  /** Runs `task` after every earlier task of the same room (per-room FIFO, rule 1). */
  serialise<T>(roomId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(roomId) ?? Promise.resolve();
    const arrived = process.hrtime.bigint();
    const leased = (): Promise<T> =>
      this.withRoomLease(roomId, () => {
        this.inputLag?.observe({ kind: 'room' }, Number(process.hrtime.bigint() - arrived) / 1e9);
        return task();
      });
    const run = previous.then(leased, leased);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(roomId, tail);
    void tail.then(() => {
      if (this.queues.get(roomId) === tail) this.queues.delete(roomId);
    });
    return run;
  }

  /** Holds the room's lease in the shared cache while `task` runs (see the file comment). */
  private async withRoomLease<T>(roomId: string, task: () => Promise<T>): Promise<T> {
    const cache = this.options.cache;
    if (!cache) return task();
    const key = `roomserver:lease:${roomId}`;
    const token = randomBytes(12).toString('hex');
    const deadline = Date.now() + ROOM_LEASE_WAIT_MS;
    let delay = 2;
    while (!(await cache.setIfAbsent(key, token, ROOM_LEASE_TTL_MS))) {
      if (Date.now() > deadline) throw new MatrixError(503, 'M_UNKNOWN', `Room ${roomId} is busy; try again`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 50);
    }
    try {
      return await task();
    } finally {
      if ((await cache.get(key)) === token) await cache.delete(key);
    }
  }

  // ---- sending ----

  /** Sends one local event into an existing room (POST/PUT endpoints, membership changes, redactions). */
  sendEvent(request: SendEventRequest): Promise<SendEventResponse> {
    return this.serialise(request.room_id, async () => {
      const room = await this.rooms.getRoom(request.room_id);
      // client-server-api: a user who is not in a room gets 403 for sending to it; an
      // unknown room looks the same, so its existence is not revealed.
      if (!room) throw Errors.forbidden(`You are not in room ${request.room_id}`);
      const version = this.versionOf(room);
      await this.repair(room, version);
      return this.writeLocal(room, version, request);
    });
  }

  /**
   * Runs `task` in the room's queue (and lease), after finishing any write a
   * dead writer left, with `persist` to store an event the caller has
   * checked: the federation membership handshakes (send_join/leave/knock
   * events built on this server's extremities, the join of a remote room).
   */
  inRoom<T>(roomId: string, task: (persist: (event: RoomEvent, version: RoomVersion) => Promise<SendEventResponse>) => Promise<T>): Promise<T> {
    return this.serialise(roomId, async () => {
      const room = await this.rooms.getRoom(roomId);
      if (room) await this.repair(room, this.versionOf(room));
      return task((event, version) => this.persist(event, version, { txnId: null, deviceId: null }, null));
    });
  }

  private versionOf(room: RoomRecord): RoomVersion {
    const version = getRoomVersion(room.version);
    if (!version) throw Errors.unknown(`room ${room._id} has unknown version ${room.version}`);
    return version;
  }

  /** The state entries authorisation of `draft` needs (auth events selection, plus the create event). */
  private async loadAuthState(
    roomId: string,
    draft: Pick<RoomEvent, 'type' | 'state_key' | 'sender' | 'content'>,
    version: RoomVersion,
  ): Promise<{ lookup: AuthStateLookup; authEvents: RoomEvent[]; hasPolicy: boolean }> {
    const keys = authEventKeys(draft, version);
    const wanted = [...keys];
    // v12: the create event is not an auth event, but the rules read it through the lookup.
    if (draft.type !== 'm.room.create' && !wanted.some(([t]) => t === 'm.room.create')) wanted.push(['m.room.create', '']);
    // Whether the room names a Policy Server, in the same read (most rooms do not: no further cost).
    wanted.push([POLICY_EVENT_TYPE, '']);
    // One read of the current-state records (which carry the event JSON), not one per key.
    const state = await this.rooms.currentStateEventsFor(roomId, wanted);
    const authEvents = keys.map(([t, k]) => state.get(`${t}\u0000${k}`)).filter((e): e is RoomEvent => e !== undefined);
    return { lookup: (type, key) => state.get(`${type}\u0000${key}`), authEvents, hasPolicy: state.has(`${POLICY_EVENT_TYPE}\u0000`) };
  }

  /**
   * Builds, signs, authorises and persists one local event. Must run inside
   * the room's queue.
   */
  private async writeLocal(room: RoomRecord, version: RoomVersion, request: SendEventRequest): Promise<SendEventResponse> {
    try {
      const result = await this.buildAndPersist(room, version, request);
      this.outcomes?.inc({ outcome: 'accepted' });
      return result;
    } catch (err) {
      this.outcomes?.inc({ outcome: err instanceof MatrixError ? err.errcode : 'error' });
      throw err;
    }
  }

  /** Checks on a local event the auth rules leave to the sending server. */
  private checkDraft(request: SendEventRequest): void {
    // server-server-api "Size limits": type and state_key are at most 255 bytes.
    for (const [field, value] of [['type', request.type], ['state_key', request.state_key]] as const) {
      if (value !== undefined && Buffer.byteLength(value) > MAX_FIELD_BYTES) throw Errors.tooLarge(`Event ${field} is longer than ${MAX_FIELD_BYTES} bytes`);
    }
    if (request.type === '') throw Errors.invalidParam('Event type must not be empty');
    // The create event is made once, by createRoom (auth rule 1: it has no prev_events).
    if (request.type === 'm.room.create') throw Errors.forbidden('m.room.create can only be the first event of a room');
    // m.room.member: "state_key: The user ID this membership event relates to".
    if (request.type === 'm.room.member' && (request.state_key === undefined || !isValidUserId(request.state_key, 'historical'))) {
      throw Errors.invalidParam(`The state key of m.room.member must be a user ID, not ${JSON.stringify(request.state_key)}`);
    }
    if (request.type === 'm.room.redaction' && typeof request.redacts !== 'string') throw Errors.badJson('A redaction needs the ID of the event it redacts');
  }

  private async buildAndPersist(room: RoomRecord, version: RoomVersion, request: SendEventRequest): Promise<SendEventResponse> {
    this.checkDraft(request);
    const draft = { type: request.type, state_key: request.state_key, sender: request.sender, content: request.content };
    const { lookup, authEvents, hasPolicy } = await this.loadAuthState(room._id, draft, version);

    // prev_events: the forward extremities; depth: one more than the deepest
    // (server-server-api "PDUs": depth is "the maximum depth of the prev_events, plus one").
    const extremities = (await this.rooms.forwardExtremities(room._id)).slice(0, MAX_PREV_EVENTS);
    const depth = Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, ...extremities.map((x) => x.depth)) + 1);
    const ref = (e: RoomEvent): EventRefInput => (version.eventIdFormat === 'explicit' ? eventReference(e, version) : e.event_id);
    // v3+ reference events by ID alone, which the extremity records hold; v1–v2
    // references carry the reference hash, so those events are read.
    const prevRefs: EventRefInput[] =
      version.eventIdFormat === 'explicit' ? (await this.rooms.getEvents(extremities.map((x) => x.event_id))).map((r) => ref(eventOf(r))) : extremities.map((x) => x.event_id);

    let event: RoomEvent;
    try {
      const pdu = buildPdu(
        {
          room_id: room._id,
          sender: request.sender,
          type: request.type,
          state_key: request.state_key,
          content: request.content,
          origin_server_ts: this.now(),
          depth,
          prev_events: prevRefs,
          auth_events: authEvents.map(ref),
          redacts: request.redacts,
        },
        version,
      );
      event = toRoomEvent(signPdu(pdu, version, this.options.serverName, this.options.signingKey), version);
    } catch (err) {
      // v6+: "numbers that are not integers in [-(2^53)+1, 2^53-1]" cannot be canonical JSON.
      if (err instanceof CanonicalJsonError) throw Errors.badJson(`Event content is not valid canonical JSON for room version ${version.id}: ${err.message}`);
      throw err;
    }
    if (Buffer.byteLength(JSON.stringify(toWirePdu(event, version))) > MAX_PDU_BYTES) {
      throw Errors.tooLarge(`Event is larger than ${MAX_PDU_BYTES} bytes`);
    }

    // Client transactions ("Transaction identifiers"): claimed by an insert before the
    // checks, so the common case (a new transaction) costs one insert and no lookup, and a
    // retry of a transaction that succeeded gets its event even if the checks would now fail.
    const txnKey = request.txn ? { userId: request.sender, deviceId: request.txn.device_id, scope: request.txn.scope, txnId: request.txn.txn_id } : undefined;
    if (txnKey) {
      const recorded = await this.rooms.recordTxn(txnKey, event.event_id, room._id);
      if (recorded !== event.event_id) {
        if (await this.rooms.getEvent(recorded)) return { event_id: recorded, stream: 0 };
        // A writer died between claiming the transaction and storing its event: send it now.
        await this.rooms.deleteTxn(txnKey);
        await this.rooms.recordTxn(txnKey, event.event_id, room._id);
      }
    }
    let redactionTarget: EventRecord | null;
    try {
      ({ event, redactionTarget } = await this.checkAndSign(room, version, request, event, lookup, hasPolicy));
    } catch (err) {
      // Refused before anything was stored: the transaction is free again, so a retry is judged anew.
      if (txnKey) await this.rooms.deleteTxn(txnKey);
      throw err;
    }
    const result = await this.persist(event, version, { txnId: request.txn?.txn_id ?? null, deviceId: request.txn?.device_id ?? null }, redactionTarget);
    if (event.type === 'm.room.guest_access' && event.state_key === '' && event.content['guest_access'] !== 'can_join') {
      await this.removeGuests(room, version);
    }
    return result;
  }

  /**
   * What stands between an authorised draft and its storage: the auth rules
   * and the local redaction rule (the redaction target, null if none),
   * invite permission, the room's Policy Server, and a remote invitee's
   * server; each may refuse. Returns the event as signed by the Policy Server
   * and the invitee's server.
   */
  private async checkAndSign(
    room: RoomRecord,
    version: RoomVersion,
    request: SendEventRequest,
    built: RoomEvent,
    lookup: AuthStateLookup,
    hasPolicy: boolean,
  ): Promise<{ event: RoomEvent; redactionTarget: EventRecord | null }> {
    let event = built;
    const redactionTarget = await this.checkLocal(room, version, request, event, lookup);
    const invitee = event.type === 'm.room.member' && event.content['membership'] === 'invite' ? event.state_key : undefined;
    // "Invite permission": refused after the auth rules (they decide first whether the sender may invite at all).
    if (invitee !== undefined && domainOfId(invitee) === this.options.serverName && (await this.invitesBlocked(invitee))) throw inviteBlocked(invitee);
    // server-server-api "Policy Servers": signed by the room's Policy Server before it is sent anywhere.
    if (hasPolicy && this.options.policyServers) event = await this.options.policyServers.signLocal(event, version);
    if (this.options.remoteInvite && invitee !== undefined && domainOfId(invitee) !== this.options.serverName) event = await this.options.remoteInvite(event, version);
    return { event, redactionTarget };
  }

  private async invitesBlocked(userId: string): Promise<boolean> {
    return (await this.options.invitesBlocked?.(userId)) ?? false;
  }

  /**
   * The authorization rules and the local redaction rule; returns the event a
   * redaction redacts (null if none or unknown).
   */
  private async checkLocal(room: RoomRecord, version: RoomVersion, request: SendEventRequest, event: RoomEvent, lookup: AuthStateLookup): Promise<EventRecord | null> {
    // The authorization rules against the current state (this server is the only writer,
    // so the state before the event is the current state).
    const verdict = authorizeEvent(event, lookup, version);
    if (!verdict.allowed) {
      throw Errors.forbidden(`${verdict.reason} (room version ${version.id} auth rule ${verdict.rule}: ${verdict.check})`);
    }

    // Redactions: room version 3+ accepts any redaction event in the auth rules and decides
    // at display time (v3-handling-redactions.md); a local user who may not redact the
    // target is refused up front instead of storing a redaction that never applies.
    let redactionTarget: EventRecord | null = null;
    if (event.type === 'm.room.redaction') {
      const targetId = request.redacts;
      redactionTarget = targetId ? await this.rooms.getEvent(targetId) : null;
      if (redactionTarget && redactionTarget.room_id !== room._id) redactionTarget = null;
      // Local senders: their own events, or any event once their power reaches the redact
      // level (client-server-api "Redactions"; the same-domain allowance of the v3+ display
      // check exists for other servers' moderators and would let every local user redact
      // every other local user's events).
      if (redactionTarget && redactionTarget.sender !== event.sender) {
        const redactLevel = readPowerLevels(lookup('m.room.power_levels', ''), version).levels.redact;
        const applies = version.redactionCheckedAtDisplay ? redactionApplies(event, eventOf(redactionTarget), lookup, version) : true;
        if (!applies || userPowerLevel(event.sender, lookup, version) < redactLevel) {
          throw Errors.forbidden('You may only redact your own events unless your power level reaches the redact level');
        }
      }
    }

    return redactionTarget;
  }

  /**
   * client-server-api "Guest access", server behaviour: "If the
   * m.room.guest_access event is changed to stop this from being the case, the
   * server MUST set those users' m.room.member state to leave." Each guest
   * leaves by their own event (a leave needs no power). Runs inside the queue.
   */
  private async removeGuests(room: RoomRecord, version: RoomVersion): Promise<void> {
    const isGuest = this.options.isGuest;
    if (!isGuest) return;
    for (const userId of await this.rooms.joinedUsers(room._id)) {
      if (!(await isGuest(userId))) continue;
      await this.writeLocal(room, version, { room_id: room._id, sender: userId, type: 'm.room.member', state_key: userId, content: { membership: 'leave' } });
    }
  }

  /** Persists an authorised event: row, current state, membership, extremities, redaction; then wakes sync. */
  private async persist(event: RoomEvent, version: RoomVersion, txn: { txnId: string | null; deviceId: string | null }, redactionTarget: EventRecord | null): Promise<SendEventResponse> {
    const unsigned: JsonObject = {};
    let prevMembership: unknown;
    if (event.state_key !== undefined) {
      const prev = (await this.rooms.currentStateEventsFor(event.room_id, [[event.type, event.state_key]])).get(`${event.type}\u0000${event.state_key}`);
      if (prev) {
        prevMembership = prev.content['membership'];
        // client-server-api UnsignedData: prev_content, and replaces_state (v1.19).
        unsigned['prev_content'] = prev.content;
        unsigned['prev_sender'] = prev.sender;
        unsigned['replaces_state'] = prev.event_id;
      }
    }
    // State groups (docs/federation-design.md "Room state with federation"): a local
    // event's prev_events are the forward extremities, so the state before it is the
    // current state; a state event's group is a one-entry delta over it, named by its ID.
    const stateBefore = await this.rooms.currentStateGroup(event.room_id);
    const stateAfter =
      event.state_key === undefined
        ? stateBefore
        : await this.rooms.storeStateDelta(event.room_id, event.event_id, stateBefore, new Map([[stateKey(event.type, event.state_key), event.event_id]]));
    // The row first, then its effects: a writer that dies in between leaves a stored event
    // whose effects the next writer of the room applies (repair), so nothing is half-done for long.
    const position = await this.rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
      await this.rooms.markPending(event.room_id, stream);
      await this.rooms.insertEvent({ event, stream, unsigned, txnId: txn.txnId, deviceId: txn.deviceId, stateGroup: stateAfter, prevStateGroup: stateBefore });
      return stream;
    });
    // A message leaves the current state's group as it is: no write for it.
    await this.applyEffects(event, position, version, redactionTarget, event.state_key === undefined ? null : stateAfter);
    const wake: SyncWake = { stream: EVENTS_STREAM, position, room_id: event.room_id };
    // An invitee (or a kicked/banned user) is not a joined member: name them so their sync wakes too.
    if (event.type === 'm.room.member' && event.state_key !== undefined) wake.user_ids = [event.state_key];
    await this.bus.notify(SYNC_WAKE_SUBJECT, wake);
    if (event.type === 'm.room.member' && event.content['membership'] === 'join' && prevMembership !== 'join') {
      await this.options.localJoin?.(event.sender, event.room_id).catch(() => undefined);
    }
    return { event_id: event.event_id, stream: position };
  }

  /**
   * What storing an event changes besides its row: current state, the
   * membership, forward extremities, the redaction it makes; then the room's
   * applied position. Idempotent, so a repair may run it again.
   */
  private async applyEffects(event: RoomEvent, stream: number, version: RoomVersion, redactionTarget: EventRecord | null, stateGroup: string | null): Promise<void> {
    if (event.state_key !== undefined) await this.rooms.setCurrentState(event, stream);
    if (stateGroup) await this.rooms.setCurrentStateGroup(event.room_id, stateGroup);
    if (event.type === 'm.room.member') await this.rooms.setMembership(event, stream);
    await this.rooms.updateExtremities(event, event.prev_events.map((p) => (typeof p === 'string' ? p : p[0])));
    if (redactionTarget && !redactionTarget.redacted) {
      const record = await this.rooms.getEvent(event.event_id);
      const because = record ? toClientEvent(record, { now: event.origin_server_ts }) : null;
      if (because) delete because.unsigned['age'];
      await this.rooms.applyRedaction(redactionTarget._id, redactEvent(eventOf(redactionTarget), version), event.event_id, (because ?? {}) as unknown as JsonObject);
    }
    await this.rooms.markApplied(event.room_id, stream);
  }

  /**
   * Applies the effects of events a previous writer stored but died before
   * applying (ARCHITECTURE.md rule 4: no transactions, so each write must be
   * completable). Runs inside the room's queue and lease, where no other write
   * of the room can be in flight, so every event past `applied_stream` is such
   * a leftover. Their checks passed before they were stored.
   */
  private async repair(room: RoomRecord, version: RoomVersion): Promise<void> {
    // The room record says whether a write was left unfinished: no read of the event table
    // on the common path. Rooms stored before these fields existed have neither.
    if (room.applied_stream === undefined || room.pending_stream === undefined || room.pending_stream <= room.applied_stream) return;
    const leftovers = await this.rooms.roomEvents(room._id, { from: room.applied_stream, to: room.pending_stream, direction: 'forward' });
    if (leftovers.length === 0) await this.rooms.markApplied(room._id, room.pending_stream);
    for (const record of leftovers) {
      const event = eventOf(record);
      let target: EventRecord | null = null;
      if (record.redacts !== null) {
        target = await this.rooms.getEvent(record.redacts);
        if (target && target.room_id !== room._id) target = null;
      }
      await this.applyEffects(event, record.stream, version, target, record.state_group ?? null);
    }
  }

  // ---- room creation ----

  /** The signed m.room.create event; `delayMs` moves its timestamp (and so a v12 room ID) forward. */
  private buildCreateEvent(sender: string, content: JsonObject, version: RoomVersion, delayMs: number): RoomEvent {
    const roomId = version.roomIdFromCreateEvent ? undefined : `!${randomId(18)}:${this.options.serverName}`;
    try {
      const pdu = buildPdu(
        { room_id: roomId, sender, type: 'm.room.create', state_key: '', content, origin_server_ts: this.now() + delayMs, depth: 1, prev_events: [], auth_events: [] },
        version,
      );
      return toRoomEvent(signPdu(pdu, version, this.options.serverName, this.options.signingKey), version);
    } catch (err) {
      if (err instanceof CanonicalJsonError) throw Errors.badJson(`creation_content is not valid canonical JSON: ${err.message}`);
      throw err;
    }
  }

  /**
   * POST /createRoom: the m.room.create event, then the given events in order
   * (client-server-api createRoom: "It MUST apply the events implied by the
   * request in the following order"), each authorised like any event.
   */
  async createRoom(request: CreateRoomRequest): Promise<{ room_id: string }> {
    const version = getRoomVersion(request.room_version);
    if (!version) throw roomCode(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${request.room_version} is not supported`);
    // "Invite permission": createRoom answers 403 M_INVITE_BLOCKED "due to a user in the invite list". For
    // local invitees that is known before anything is made; a remote server's refusal comes after the room
    // exists, and then only that invite is dropped ("one of the invited users [may] be rejected whilst the
    // room creation as a whole succeeds").
    for (const draft of request.events) {
      const invitee = draft.type === 'm.room.member' && draft.content['membership'] === 'invite' ? draft.state_key : undefined;
      if (invitee !== undefined && domainOfId(invitee) === this.options.serverName && (await this.invitesBlocked(invitee))) throw inviteBlocked(invitee);
    }
    const content: JsonObject = { ...request.creation_content, room_version: version.id };
    // "The server will overwrite the following keys: creator, room_version." From v11 the
    // creator is the sender and `creator` is not part of the content (content/rooms/v11.md).
    if (version.implicitRoomCreator) delete content['creator'];
    else content['creator'] = request.sender;

    // From room version 12 the room ID is the create event's reference hash, so two
    // identical requests by one user within one millisecond would name the same room.
    // The room record is the claim: if another create took the ID, this one is made
    // again one millisecond later (a new ID), so no second request writes into the first room.
    let create: RoomEvent | undefined;
    for (let attempt = 0; create === undefined; attempt++) {
      if (attempt >= 5) throw new Error('could not allocate a room ID for createRoom after 5 attempts');
      const candidate = this.buildCreateEvent(request.sender, content, version, attempt);
      const verdict = authorizeEvent(candidate, () => undefined, version);
      if (!verdict.allowed) throw roomCode(400, 'M_INVALID_ROOM_STATE', `m.room.create refused: ${verdict.reason} (rule ${verdict.rule})`);
      if (await this.rooms.getRoom(candidate.room_id)) continue;
      // The alias first: a taken alias fails the request before anything is stored.
      if (request.alias !== undefined && !(await this.rooms.createAlias(request.alias, candidate.room_id, request.sender))) {
        throw roomCode(400, 'M_ROOM_IN_USE', `Room alias ${request.alias} already exists`);
      }
      if (await this.rooms.createRoom({ roomId: candidate.room_id, version: version.id, creator: request.sender, visibility: request.visibility })) {
        create = candidate;
      } else if (request.alias !== undefined) {
        await this.rooms.deleteAlias(request.alias); // lost the race for this ID: the alias is made again with the next one
      }
    }
    const room = (await this.rooms.getRoom(create.room_id)) as RoomRecord;

    await this.serialise(room._id, async () => {
      await this.persist(create, version, { txnId: null, deviceId: null }, null);
      for (const draft of request.events) {
        try {
          await this.writeLocal(room, version, { room_id: room._id, sender: request.sender, type: draft.type, state_key: draft.state_key, content: draft.content });
        } catch (err) {
          if (err instanceof MatrixError && err.errcode === INVITE_BLOCKED) continue;
          // "The initial state implied by the parameters to the request is invalid" → M_INVALID_ROOM_STATE.
          if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
            throw roomCode(400, 'M_INVALID_ROOM_STATE', `Initial ${draft.type} event refused: ${err.message}`);
          }
          throw err;
        }
      }
    });
    return { room_id: room._id };
  }

  // ---- room upgrades ----

  /**
   * client-server-api "Room Upgrades", server behaviour, in its order:
   * 1. the user may send m.room.tombstone in the old room; 2. a replacement room
   * whose m.room.create has `predecessor`, the new version and the old `type`;
   * 3. the transferable state copied; 4. local aliases moved; 5. the tombstone;
   * 6. the old room's power levels raised so nobody without power sends or invites.
   */
  async upgradeRoom(request: UpgradeRoomRequest): Promise<{ replacement_room: string }> {
    const newVersion = getRoomVersion(request.new_version);
    if (!newVersion) throw roomCode(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${request.new_version} is not supported`);
    const old = await this.rooms.getRoom(request.room_id);
    if (!old) throw Errors.forbidden(`You are not in room ${request.room_id}`);
    const oldVersion = this.versionOf(old);
    if ((await this.rooms.getMembership(old._id, request.sender))?.membership !== 'join') throw Errors.forbidden(`You are not in room ${old._id}`);

    // 1. Permission to send the tombstone, from the old room's current state.
    const oldState = new Map<string, RoomEvent>();
    for (const record of await this.rooms.currentState(old._id)) oldState.set(`${record.type}\u0000${record.state_key}`, eventOf(record));
    const lookup: AuthStateLookup = (type, key) => oldState.get(`${type}\u0000${key}`);
    const oldLevels = readPowerLevels(lookup('m.room.power_levels', ''), oldVersion);
    if (userPowerLevel(request.sender, lookup, oldVersion) < requiredPowerLevel('m.room.tombstone', true, oldLevels)) {
      throw Errors.forbidden('You may not send m.room.tombstone in this room, so you may not upgrade it');
    }

    // 2. The replacement room.
    const oldCreate = lookup('m.room.create', '');
    const creation: JsonObject = {};
    const lastEvent = await this.rooms.latestEvent(old._id);
    const predecessor: JsonObject = { room_id: old._id };
    // "When upgrading to room version 12 or later, the event_id property inside predecessor MAY be omitted."
    if (!newVersion.roomIdFromCreateEvent && lastEvent) predecessor['event_id'] = lastEvent._id;
    creation['predecessor'] = predecessor;
    const roomType = oldCreate?.content['type'];
    if (roomType !== undefined) creation['type'] = roomType;
    // Additional creators are not carried over; only those given in the request (v1.16 note).
    if (newVersion.privilegedCreators && request.additional_creators && request.additional_creators.length > 0) {
      creation['additional_creators'] = [...new Set(request.additional_creators)];
    }
    const creators = new Set([request.sender, ...(newVersion.privilegedCreators ? (request.additional_creators ?? []) : [])]);

    const events: StateDraft[] = [{ type: 'm.room.member', state_key: request.sender, content: { membership: 'join' } }];
    // Power levels first (the creator needs them to send the rest); creators of a v12+
    // room have infinite power and may not be listed in `users`.
    const plContent: JsonObject = { ...(lookup('m.room.power_levels', '')?.content ?? {}) };
    const users: JsonObject = { ...((plContent['users'] as JsonObject | undefined) ?? {}) };
    if (newVersion.privilegedCreators) {
      for (const creator of creators) delete users[creator];
    } else {
      // From a v12 room, the upgrading creator may have had infinite power without a `users` entry.
      const needed = Math.max(100, ...Object.values(users).filter((v): v is number => typeof v === 'number'));
      if (typeof users[request.sender] !== 'number' || (users[request.sender] as number) < needed) users[request.sender] = needed;
    }
    plContent['users'] = users;
    events.push({ type: 'm.room.power_levels', state_key: '', content: plContent });
    for (const type of TRANSFERABLE_STATE) {
      const event = lookup(type, '');
      if (event && Object.keys(event.content).length > 0) events.push({ type, state_key: '', content: event.content });
    }
    const { room_id: replacement } = await this.createRoom({
      sender: request.sender,
      room_version: newVersion.id,
      creation_content: creation,
      events,
      visibility: old.visibility,
    });

    // 4. Local aliases follow the room.
    for (const alias of await this.rooms.aliasesOfRoom(old._id)) await this.rooms.moveAlias(alias, replacement);

    // 5. The tombstone.
    await this.sendEvent({ room_id: old._id, sender: request.sender, type: 'm.room.tombstone', state_key: '', content: { body: 'This room has been replaced', replacement_room: replacement } });

    // 6. "setting events_default and invite to the greater of 50 and users_default + 1".
    const current = await this.rooms.currentStateEvent(old._id, 'm.room.power_levels', '');
    const restricted: JsonObject = { ...(current ? eventOf(current).content : {}) };
    const level = Math.max(50, oldLevels.levels.users_default + 1);
    restricted['events_default'] = level;
    restricted['invite'] = level;
    try {
      await this.sendEvent({ room_id: old._id, sender: request.sender, type: 'm.room.power_levels', state_key: '', content: restricted });
    } catch (err) {
      // "If possible": a user who may send the tombstone but not power levels leaves them as they are.
      if (!(err instanceof MatrixError)) throw err;
    }
    if (old.visibility === 'public') await this.rooms.setVisibility(old._id, 'private');
    return { replacement_room: replacement };
  }

  // ---- deactivation ----

  /** Makes `userId` leave every room they are joined to, invited to or knocking on. */
  async leaveAllRooms(userId: string, reason?: string): Promise<string[]> {
    const left: string[] = [];
    for (const membership of await this.rooms.roomsOfUser(userId, ['join', 'invite', 'knock'])) {
      const content: JsonObject = { membership: 'leave' };
      if (reason) content['reason'] = reason;
      try {
        await this.sendEvent({ room_id: membership.room_id, sender: userId, type: 'm.room.member', state_key: userId, content });
        left.push(membership.room_id);
      } catch (err) {
        // A room that refuses the leave (should not happen for these memberships) must not stop
        // deactivation of the others; the caller sees which rooms were left.
        if (!(err instanceof MatrixError)) throw err;
      }
    }
    return left;
  }
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
function randomId(length: number): string {
  let out = '';
  for (const byte of randomBytes(length)) out += ALPHABET[byte % ALPHABET.length];
  return out;
}
