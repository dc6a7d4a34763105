/**
 * The federation membership handshakes, both ways (docs/federation-design.md
 * "Membership handshakes (as built)"; server-server-api "Joining Rooms", "Knocking upon
 * a room", "Inviting to a room", "Leaving Rooms (Rejecting Invites)",
 * "Restricted rooms"; data/api/server-server/joins-v1.yaml, joins-v2.yaml,
 * leaving-v2.yaml, knocks.yaml, invites-v1.yaml, invites-v2.yaml).
 *
 * Inbound (this server is resident): make_* answers a template built on the
 * forward extremities; send_* checks the signed event's shape, then hands it
 * to the room-server federation input (verifyPdus, acceptEvent: signatures,
 * hashes, auth, persistence) like any PDU; invite v1/v2 signs a remote
 * server's invite of a local user and stores it outside the room for /sync.
 *
 * Outbound (a local user and a room this server is not in): make_* to the
 * candidate servers in turn, fill in and sign the template, send_*; for a
 * join, the returned state and auth chain are checked and stored through the
 * federation input (verifyPdus, storeOutliers), the state becomes the room's
 * current state and state group, and the join itself is persisted by the
 * RoomWriter on that state. A local user's invite
 * of a remote user goes through the invitee's server first (sendInvite).
 */
import type { Bus } from '@atrium/bus';
import { FederationHttpError, FederationUnreachableError, remoteKeyId, type FederationClient, type KeyRing } from '@atrium/federation-client';
import { Errors, MatrixError } from '@atrium/http';
import {
  authEventKeys,
  authorizeEvent,
  buildPdu,
  checkContentHash,
  checkMembershipTemplate,
  checkPduHashesAndSignatures,
  checkSentMembership,
  domainOfId,
  eventReference,
  getRoomVersion,
  parseRoomId,
  readPowerLevels,
  ROOM_VERSIONS,
  serversOfMembers,
  signPdu,
  stateKey,
  STRIPPED_STATE_TYPES,
  stripReceivedState,
  toRoomEvent,
  toWirePdu,
  type EventRefInput,
  type JsonObject,
  type JsonValue,
  type KnownVerifyKey,
  type Pdu,
  type RoomEvent,
  type RoomVersion,
  type SigningKey,
  type StateKey,
  type UnsignedPdu,
  userPowerLevel,
} from '@atrium/matrix';
import { EVENTS_STREAM, eventOf, SYNC_WAKE_SUBJECT, type EventRecord, type RoomRecord, type RoomStore, type SyncWake } from '@atrium/rooms';
import { INVITE_BLOCKED } from '@atrium/user-data';
import type {
  MakeMembershipRequest,
  MakeMembershipResponse,
  ReceiveInviteRequest,
  ReceiveInviteResponse,
  RemoteMembershipRequest,
  RemoteMembershipResponse,
  SendMembershipRequest,
  SendMembershipResponse,
} from './room-server.api';
import type { FederationInput } from './federation/federation-input';
import { verifyPdus } from './federation/pdu-verifier';
import type { RoomWriter } from './room-writer';

/** At most this many forward extremities become a template's prev_events (as for local events). */
const MAX_PREV_EVENTS = 10;
/** Every room version this server supports: make_join / make_knock `ver`. */
const SUPPORTED_VERSIONS = Object.keys(ROOM_VERSIONS);

export interface FederationMembershipOptions {
  serverName: string;
  signingKey: SigningKey;
  /** Outgoing federation requests; without it, handshakes towards other servers fail with 502. */
  client?: FederationClient;
  /** Other servers' keys; without it, only events signed by this server verify. */
  keyRing?: KeyRing;
  /**
   * The room-server federation input (receipt checks and persistence of
   * remote events), read when needed: it is built after this object.
   */
  input?: () => FederationInput | undefined;
  /** Whether a local user exists and may receive invites. */
  userExists?: (userId: string) => Promise<boolean>;
  /** Whether a local user blocks invites (client-server-api "Invite permission"): /invite answers 403 M_INVITE_BLOCKED. */
  invitesBlocked?: (userId: string) => Promise<boolean>;
  now?: () => number;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const enc = encodeURIComponent;

export class FederationMembership {
  private readonly now: () => number;

  constructor(
    private readonly rooms: RoomStore,
    private readonly writer: RoomWriter,
    private readonly bus: Bus,
    private readonly options: FederationMembershipOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  private get serverName(): string {
    return this.options.serverName;
  }

  private versionOf(room: RoomRecord): RoomVersion {
    const version = getRoomVersion(room.version);
    if (!version) throw Errors.unknown(`room ${room._id} has unknown version ${room.version}`);
    return version;
  }

  /** Whether a user of this server is joined to the room (so this server can act as a resident server). */
  async isResident(roomId: string): Promise<boolean> {
    return (await this.rooms.joinedUsers(roomId)).some((u) => domainOfId(u) === this.serverName);
  }

  // ---- signatures (server-server-api "Validating hashes and signatures on received events") ----

  /**
   * Whether each of `servers` validly signed `event` (keys through the
   * KeyRing, at the event's origin_server_ts from room version 5; this
   * server's own key directly) and whether its content hash holds
   * (server-server-api "Validating hashes and signatures on received
   * events"). For what the receipt checks do not cover: the invitee's
   * server's signature on an invite, which is not a required signer.
   */
  private async checkSignedBy(event: RoomEvent, version: RoomVersion, servers: readonly string[]): Promise<{ ok: true; redacted: boolean } | { ok: false; error: string }> {
    const requests = servers
      .filter((server) => server !== this.serverName)
      .map((serverName) => ({
        serverName,
        keyIds: Object.keys(isObject(event.signatures?.[serverName]) ? event.signatures[serverName] : {}),
        atTs: version.enforceKeyValidity ? event.origin_server_ts : undefined,
      }));
    const found = requests.length > 0 && this.options.keyRing ? await this.options.keyRing.getVerifyKeys(requests) : new Map();
    const own = this.options.signingKey;
    const lookup = (serverName: string, keyId: string): KnownVerifyKey | undefined =>
      serverName === this.serverName && keyId === own.keyId ? { key: own.publicKey } : found.get(remoteKeyId(serverName, keyId));
    const result = checkPduHashesAndSignatures(event, version, lookup, { requiredServers: servers });
    if (result.outcome === 'reject') return { ok: false, error: `signature of ${result.signatures.serverName}: ${result.signatures.reason}` };
    return { ok: true, redacted: result.outcome === 'redact' };
  }

  // ---- inbound: make_join / make_leave / make_knock ----

  async makeMembership(request: MakeMembershipRequest): Promise<MakeMembershipResponse> {
    const room = await this.rooms.getRoom(request.room_id);
    // A room this server does not know, or is no longer in, cannot be joined through it.
    if (!room || !(await this.isResident(room._id))) throw Errors.notFound(`This server is not in room ${request.room_id}`);
    const version = this.versionOf(room);
    if (request.membership !== 'leave') {
      // joins-v1.yaml / knocks.yaml `ver`: "Defaults to [1]" when absent.
      const supported = request.supported_versions && request.supported_versions.length > 0 ? request.supported_versions : ['1'];
      if (!supported.includes(version.id)) {
        throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `Your server does not support room version ${version.id}`, { room_version: version.id });
      }
    }
    if (request.membership === 'knock' && !version.knock) throw Errors.forbidden(`Room version ${version.id} does not support knocking`);
    const content: JsonObject = { membership: request.membership };
    if (request.membership === 'join') Object.assign(content, await this.restrictedAuthoriser(room, version, request.user_id));
    const template = await this.buildTemplate(room, version, request.user_id, content);
    return { room_version: version.id, event: template };
  }

  /**
   * server-server-api "Restricted rooms": a join into a restricted room by a
   * user who is not invited or joined needs `join_authorised_via_users_server`,
   * a local member who may invite. This server must know the user's
   * membership of an allowed room: when it is in none of them it answers 400
   * M_UNABLE_TO_AUTHORISE_JOIN (another resident server may be able to);
   * when the user is in none, 403.
   */
  private async restrictedAuthoriser(room: RoomRecord, version: RoomVersion, userId: string): Promise<JsonObject> {
    if (!version.restrictedJoin) return {};
    const current = (await this.rooms.getMembership(room._id, userId))?.membership;
    if (current === 'invite' || current === 'join') return {};
    const state = await this.rooms.currentStateEventsFor(room._id, [['m.room.join_rules', ''], ['m.room.power_levels', ''], ['m.room.create', '']]);
    const rules = state.get(stateKey('m.room.join_rules', ''))?.content ?? {};
    const rule = rules['join_rule'];
    if (rule !== 'restricted' && !(rule === 'knock_restricted' && version.knockRestricted)) return {};
    const allowedRooms = (Array.isArray(rules['allow']) ? rules['allow'] : [])
      .filter((c): c is JsonObject => isObject(c) && c['type'] === 'm.room_membership' && typeof c['room_id'] === 'string')
      .map((c) => c['room_id'] as string);
    let known = false;
    let allowed = false;
    for (const allowedRoom of allowedRooms) {
      if (!(await this.isResident(allowedRoom))) continue;
      known = true;
      if ((await this.rooms.getMembership(allowedRoom, userId))?.membership === 'join') {
        allowed = true;
        break;
      }
    }
    if (!known) throw new MatrixError(400, 'M_UNABLE_TO_AUTHORISE_JOIN', 'This server cannot tell whether you may join this restricted room');
    if (!allowed) throw Errors.forbidden('You are not joined to any room that allows joining this one');
    const lookup = (type: string, key: string): RoomEvent | undefined => state.get(stateKey(type, key));
    const inviteLevel = readPowerLevels(lookup('m.room.power_levels', ''), version).levels.invite;
    for (const member of await this.rooms.joinedUsers(room._id)) {
      if (domainOfId(member) !== this.serverName) continue;
      const level = await this.powerOf(room, version, member);
      if (level >= inviteLevel) return { join_authorised_via_users_server: member };
    }
    throw new MatrixError(400, 'M_UNABLE_TO_AUTHORISE_JOIN', 'No user of this server in the room may authorise your join');
  }

  private async powerOf(room: RoomRecord, version: RoomVersion, userId: string): Promise<number> {
    const state = await this.rooms.currentStateEventsFor(room._id, [['m.room.power_levels', ''], ['m.room.create', '']]);
    return userPowerLevel(userId, (t, k) => state.get(stateKey(t, k)), version);
  }

  /**
   * The unsigned template of `userId`'s membership event: prev_events are the
   * forward extremities, auth_events the selection for the current state
   * (as for a local event), and the template must pass the auth rules
   * against the current state, so the remote server is not sent on a
   * handshake the room would refuse (403 otherwise).
   */
  private async buildTemplate(room: RoomRecord, version: RoomVersion, userId: string, content: JsonObject): Promise<JsonObject> {
    const draft = { type: 'm.room.member', state_key: userId, sender: userId, content };
    const keys = authEventKeys(draft, version);
    const wanted: Array<[string, string]> = [...keys];
    if (!wanted.some(([t]) => t === 'm.room.create')) wanted.push(['m.room.create', '']);
    const state = await this.rooms.currentStateEventsFor(room._id, wanted);
    const authEvents = keys.map(([t, k]) => state.get(stateKey(t, k))).filter((e): e is RoomEvent => e !== undefined);
    const extremities = (await this.rooms.forwardExtremities(room._id)).slice(0, MAX_PREV_EVENTS);
    const depth = Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, ...extremities.map((x) => x.depth)) + 1);
    const explicit = version.eventIdFormat === 'explicit';
    const ref = (e: RoomEvent): EventRefInput => (explicit ? eventReference(e, version) : e.event_id);
    const prevRefs: EventRefInput[] = explicit ? (await this.rooms.getEvents(extremities.map((x) => x.event_id))).map((r) => ref(eventOf(r))) : extremities.map((x) => x.event_id);
    const pdu = buildPdu(
      { room_id: room._id, sender: userId, type: 'm.room.member', state_key: userId, content, origin_server_ts: this.now(), depth, prev_events: prevRefs, auth_events: authEvents.map(ref) },
      version,
    );
    const verdict = authorizeEvent({ ...(pdu as Pdu), event_id: pdu.event_id ?? '$template', room_id: room._id, hashes: { sha256: '' }, signatures: {} }, (t, k) => state.get(stateKey(t, k)), version, {
      // The template carries no signatures yet; the authoriser's signature is checked on send_join.
      verifySignature: () => true,
    });
    if (!verdict.allowed) throw Errors.forbidden(`${verdict.reason} (room version ${version.id} auth rule ${verdict.rule})`);
    // The joining server makes the event ID (v1–v2) and the hashes and signatures.
    const template: JsonObject = { ...(pdu as unknown as JsonObject), origin: this.serverName };
    delete template['event_id'];
    return template;
  }

  // ---- inbound: send_join / send_leave / send_knock ----

  async sendMembership(request: SendMembershipRequest): Promise<SendMembershipResponse> {
    const input = this.requireInput();
    const room = await this.rooms.getRoom(request.room_id);
    if (!room || !(await this.isResident(room._id))) throw Errors.notFound(`This server is not in room ${request.room_id}`);
    const version = this.versionOf(room);
    const shape = checkSentMembership(request.pdu, { roomId: room._id, membership: request.membership, origin: request.origin });
    if (!shape.ok) throw new MatrixError(shape.errcode === 'M_FORBIDDEN' ? 403 : 400, shape.errcode, shape.reason);
    let pdu = request.pdu;
    const content = pdu['content'] as JsonObject;
    const authoriser = content['join_authorised_via_users_server'];
    if (request.membership === 'join' && version.restrictedJoin && typeof authoriser === 'string' && domainOfId(authoriser) === this.serverName) {
      // A restricted join this server authorises: "the resident server [...] signs the event"
      // (joins-v2.yaml `event`), before the checks, which want the authorising server's
      // signature. Signing recomputes the content hash, so the sender's is checked first.
      let received: RoomEvent;
      try {
        received = toRoomEvent(pdu as unknown as Pdu, version);
      } catch (err) {
        throw Errors.badJson(`Not a valid room version ${version.id} event: ${(err as Error).message}`);
      }
      if (!checkContentHash(received, version)) throw Errors.badJson('The event content does not match its hash');
      pdu = signPdu(pdu as unknown as UnsignedPdu, version, this.serverName, this.options.signingKey) as unknown as JsonObject;
    }
    // Receipt steps 1–3 (format, signatures, content hash) as for any PDU (room-server federation input).
    const [verified] = await verifyPdus([pdu], version, this.requireKeyRing(), room._id);
    if (!verified.ok) throw Errors.forbidden(`The event was refused: ${verified.reason}`);
    // A membership event whose content hash fails would be stored redacted; a handshake
    // must not go on with an event the sender did not mean.
    if (verified.redacted) throw Errors.badJson('The event content does not match its hash');
    const event = verified.event;
    if (event.event_id !== request.event_id) throw Errors.badJson(`The event's ID is ${event.event_id}, not ${request.event_id}`);

    return this.writer.inRoom(room._id, async () => {
      // Steps 4–6 and persistence, as for any PDU: the event was built on this server's
      // extremities, so the state before it is known here.
      const outcome = await input.acceptEvent(room, version, event);
      if (outcome.error) throw Errors.forbidden(`The event was refused: ${outcome.error}`);
      if (outcome.softFailed) throw Errors.forbidden('The event is not allowed by the current state of the room');
      if (request.membership === 'knock') return { knock_room_state: await this.strippedStatePdus(room._id, version, null) };
      if (request.membership === 'leave') return {};
      // joins-v2.yaml: the state before the join, its auth chain with the join's, and the servers now in the room.
      const before = (await this.rooms.stateIdsBefore(event.event_id)) ?? new Map<StateKey, string>();
      const stateIds = [...before.values()];
      const state = await this.rooms.getEvents(stateIds);
      const chain = await this.rooms.authChain([...stateIds, event.event_id]);
      return {
        origin: this.serverName,
        state: state.map((r) => this.wire(r, version)),
        auth_chain: chain.map((r) => this.wire(r, version)),
        event: toWirePdu(event, version) as unknown as JsonObject,
        members_omitted: false,
        servers_in_room: serversOfMembers(await this.rooms.joinedUsers(room._id)),
      };
    });
  }

  private wire(record: EventRecord, version: RoomVersion): JsonObject {
    return toWirePdu(eventOf(record), version) as unknown as JsonObject;
  }

  private requireInput(): FederationInput {
    const input = this.options.input?.();
    if (!input) throw new MatrixError(502, 'M_UNKNOWN', 'Federation is not available on this server');
    return input;
  }

  private requireKeyRing(): KeyRing {
    if (!this.options.keyRing) throw new MatrixError(502, 'M_UNKNOWN', 'Federation is not available on this server');
    return this.options.keyRing;
  }

  /**
   * invite_room_state / knock_room_state (v1.16: full PDUs in the room
   * version's format, the create event included): the recommended stripped
   * state types from the current state, plus `extra` (the inviter's member event).
   */
  private async strippedStatePdus(roomId: string, version: RoomVersion, extra: string | null): Promise<JsonObject[]> {
    const records = (await this.rooms.currentState(roomId)).filter((r) => STRIPPED_STATE_TYPES.has(r.type) || r._id === extra);
    if (extra && !records.some((r) => r._id === extra)) {
      const record = await this.rooms.getEvent(extra);
      if (record) records.push(record);
    }
    return records.map((r) => this.wire(r, version));
  }

  // ---- inbound: invite v2 ----

  /**
   * PUT /v2/invite (invites-v2.yaml): the checks the spec lists (signature,
   * type, membership, sender on the origin, state_key on this server), the
   * invitee must exist, then the event is signed by this server and stored
   * for the invitee with the stripped `invite_room_state`, so their /sync
   * shows the invite.
   */
  async receiveInvite(request: ReceiveInviteRequest): Promise<ReceiveInviteResponse> {
    const version = getRoomVersion(request.room_version);
    if (!version) {
      throw new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', `This server does not support room version ${request.room_version}`, { room_version: request.room_version });
    }
    const pdu = request.event;
    const invalid = (reason: string): MatrixError => new MatrixError(400, 'M_INVALID_PARAM', reason);
    if (pdu['type'] !== 'm.room.member') throw invalid('The event is not an m.room.member event');
    if (!isObject(pdu['content']) || pdu['content']['membership'] !== 'invite') throw invalid('The event is not an invite');
    if (typeof pdu['sender'] !== 'string' || domainOfId(pdu['sender']) !== request.origin) throw invalid(`The sender is not a user of ${request.origin}`);
    const target = pdu['state_key'];
    if (typeof target !== 'string' || domainOfId(target) !== this.serverName) throw invalid('The invitee is not a user of this server');
    if (pdu['room_id'] !== request.room_id) throw invalid(`The event is not in room ${request.room_id}`);
    // Receipt steps 1–3 (format, signatures, content hash), as for any PDU.
    const [checked] = this.options.keyRing ? await verifyPdus([pdu], version, this.options.keyRing, request.room_id) : [{ ok: false as const, reason: 'no key ring to check signatures with' }];
    if (!checked.ok) throw invalid(`The event was refused: ${checked.reason}`);
    if (checked.redacted) throw invalid('The event content does not match its hash');
    if (checked.event.event_id !== request.event_id) throw invalid(`The event's ID is ${checked.event.event_id}, not ${request.event_id}`);
    const roomState = Array.isArray(request.invite_room_state) ? request.invite_room_state : [];
    // invites-v2.yaml: SHOULD for room version 12 (MAY before): the create event must be there.
    if (version.roomIdFromCreateEvent && !roomState.some((e) => isObject(e) && e['type'] === 'm.room.create')) {
      throw invalid('invite_room_state has no m.room.create event');
    }
    if (this.options.userExists && !(await this.options.userExists(target))) throw Errors.notFound(`Unknown user ${target}`);
    if (await this.options.invitesBlocked?.(target)) throw new MatrixError(403, INVITE_BLOCKED, `${target} does not accept invites`);

    // "The event with the invited server's signature added. All other fields of the events should remain untouched."
    const signed = signPdu(pdu as unknown as UnsignedPdu, version, this.serverName, this.options.signingKey);
    const signedEvent = toRoomEvent(signed, version);
    await this.writer.serialise(request.room_id, async () => {
      if (await this.rooms.getEvent(signedEvent.event_id)) return;
      // When this server is in the room, the invite also arrives in a transaction and is
      // stored there as part of the room; otherwise it lives outside the room's timeline
      // logic, for the invitee's /sync alone.
      if (await this.isResident(request.room_id)) return;
      await this.storeOutOfRoom(signedEvent, { invite_room_state: stripReceivedState(roomState) });
    });
    return { event: signed as unknown as JsonObject };
  }

  /**
   * Stores a membership event of a local user in a room this server is not
   * in (a received invite, a rejection or a knock made through another
   * server): a row in the events stream, the user's membership and, if this
   * server still holds the room's state, its current state; then /sync wakes
   * for the user. Must run in the room's queue.
   */
  private async storeOutOfRoom(event: RoomEvent, unsigned: JsonObject): Promise<number> {
    const position = await this.rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
      await this.rooms.insertEvent({ event, stream, unsigned });
      return stream;
    });
    if (event.state_key !== undefined && (await this.rooms.getRoom(event.room_id))) await this.rooms.setCurrentState(event, position);
    await this.rooms.setMembership(event, position);
    const wake: SyncWake = { stream: EVENTS_STREAM, position, room_id: event.room_id, user_ids: event.state_key ? [event.state_key] : undefined };
    await this.bus.notify(SYNC_WAKE_SUBJECT, wake);
    return position;
  }

  // ---- outbound: a local user's invite of a remote user ----

  /**
   * server-server-api "Inviting to a room": the invite, signed here, goes to
   * the invitee's server (PUT /v2/invite), which answers it with its own
   * signature added; the event is persisted with both. Called by the writer
   * after the auth checks, before the event is stored.
   */
  async sendInvite(event: RoomEvent, version: RoomVersion): Promise<RoomEvent> {
    const destination = event.state_key !== undefined ? domainOfId(event.state_key) : undefined;
    if (!destination || destination === this.serverName) return event;
    const client = this.requireClient();
    const body: JsonObject = {
      room_version: version.id,
      event: toWirePdu(event, version) as unknown as JsonObject,
      invite_room_state: await this.strippedStatePdus(event.room_id, version, await this.memberEventId(event.room_id, event.sender)),
    };
    let answer: JsonObject;
    try {
      answer = await client.request<JsonObject>({ destination, method: 'PUT', path: `/_matrix/federation/v2/invite/${enc(event.room_id)}/${enc(event.event_id)}`, body });
    } catch (err) {
      // invites-v2.yaml: "Senders which receive a 400 or 404 response to this endpoint should
      // retry using the v1 API as the server may be older, if the room version is "1" or "2"."
      const retryV1 = err instanceof FederationHttpError && (err.status === 400 || err.status === 404) && (version.id === '1' || version.id === '2');
      if (!retryV1) throw this.remoteError(err, destination);
      try {
        const v1Event: JsonObject = { ...(body['event'] as JsonObject), unsigned: { invite_room_state: body['invite_room_state'] as JsonValue } };
        const v1 = await client.request<JsonValue>({ destination, method: 'PUT', path: `/_matrix/federation/v1/invite/${enc(event.room_id)}/${enc(event.event_id)}`, body: v1Event });
        // invites-v1.yaml answers `[200, {event}]`.
        answer = Array.isArray(v1) && isObject(v1[1]) ? v1[1] : {};
      } catch (errV1) {
        throw this.remoteError(errV1, destination);
      }
    }
    const returned = answer['event'];
    if (!isObject(returned)) throw new MatrixError(502, 'M_UNKNOWN', `${destination} answered the invite without an event`);
    let signedBack: RoomEvent;
    try {
      signedBack = toRoomEvent(returned as unknown as Pdu, version);
    } catch {
      throw new MatrixError(502, 'M_UNKNOWN', `${destination} answered the invite with a malformed event`);
    }
    if (signedBack.event_id !== event.event_id) throw new MatrixError(502, 'M_UNKNOWN', `${destination} changed the invite event`);
    if (!isObject(signedBack.signatures?.[destination])) throw new MatrixError(502, 'M_UNKNOWN', `${destination} did not sign the invite`);
    const merged: RoomEvent = { ...event, signatures: { ...event.signatures, [destination]: signedBack.signatures[destination] } };
    // The invitee's server is not a required signer of the event, so its signature is checked here.
    const checked = await this.checkSignedBy(merged, version, [destination]);
    if (!checked.ok || checked.redacted) throw new MatrixError(502, 'M_UNKNOWN', `${destination}'s signature on the invite does not verify${checked.ok ? '' : ` (${checked.error})`}`);
    return merged;
  }

  private async memberEventId(roomId: string, userId: string): Promise<string | null> {
    return (await this.rooms.getMembership(roomId, userId))?.event_id ?? null;
  }

  // ---- outbound: join, leave, knock through another server ----

  private requireClient(): FederationClient {
    if (!this.options.client) throw new MatrixError(502, 'M_UNKNOWN', 'Federation is not available on this server');
    return this.options.client;
  }

  /**
   * The Matrix error a client sees for a failed request to another server:
   * its 4xx Matrix error passed through (but M_MISSING_PARAM/M_INVALID_PARAM,
   * which invites-v2.yaml says "SHOULD fail with a 5xx error"), anything else 502.
   */
  private remoteError(err: unknown, destination: string): MatrixError {
    if (err instanceof MatrixError) return err;
    if (err instanceof FederationHttpError) {
      const body = isObject(err.body) ? err.body : {};
      const message = typeof body['error'] === 'string' ? body['error'] : err.message;
      if (err.status >= 400 && err.status < 500 && err.errcode && err.errcode !== 'M_MISSING_PARAM' && err.errcode !== 'M_INVALID_PARAM') {
        const extra: Record<string, unknown> = {};
        if (typeof body['room_version'] === 'string') extra['room_version'] = body['room_version'];
        return new MatrixError(err.status, err.errcode, `${destination}: ${message}`, extra);
      }
      return new MatrixError(502, 'M_UNKNOWN', `${destination} answered ${err.status}: ${message}`);
    }
    if (err instanceof FederationUnreachableError) return new MatrixError(502, 'M_UNKNOWN', `${destination} is unreachable (${err.reason}): ${err.message}`);
    return new MatrixError(502, 'M_UNKNOWN', `${destination}: ${(err as Error)?.message ?? String(err)}`);
  }

  /**
   * A local user joins, leaves or knocks on a room through other servers:
   * each candidate in turn until one completes the handshake. A leave that no
   * server accepts (an invite whose inviting server is gone) is still made
   * locally, so the user can get rid of the invite.
   */
  async remoteMembership(request: RemoteMembershipRequest): Promise<RemoteMembershipResponse> {
    const servers = [...new Set(request.servers)].filter((s) => s !== this.serverName && s !== '');
    let failure: MatrixError | undefined;
    for (const server of servers) {
      try {
        return await this.membershipVia(server, request);
      } catch (err) {
        const error = this.remoteError(err, server);
        // Keep the most telling error: a Matrix refusal beats an unreachable server.
        if (!failure || (failure.status >= 500 && error.status < 500)) failure = error;
        if (error.errcode === 'M_INCOMPATIBLE_ROOM_VERSION') break;
      }
    }
    if (request.membership === 'leave') {
      const local = await this.leaveLocally(request);
      if (local) return local;
    }
    if (!failure) throw Errors.notFound(`No server to ${request.membership} room ${request.room_id} through`);
    throw failure;
  }

  private async membershipVia(server: string, request: RemoteMembershipRequest): Promise<RemoteMembershipResponse> {
    const client = this.requireClient();
    const { room_id: roomId, user_id: userId, membership } = request;
    const make = { join: 'make_join', leave: 'make_leave', knock: 'make_knock' }[membership];
    const made = await client.request<JsonObject>({
      destination: server,
      method: 'GET',
      path: `/_matrix/federation/v1/${make}/${enc(roomId)}/${enc(userId)}`,
      query: membership === 'leave' ? undefined : { ver: SUPPORTED_VERSIONS },
    });
    // joins-v1.yaml: "If not provided, the room version is assumed to be either "1" or "2"."
    const versionId = typeof made['room_version'] === 'string' ? made['room_version'] : '1';
    const version = getRoomVersion(versionId);
    if (!version) throw new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `${server} answered with room version ${versionId}, which this server does not support`);
    const template = made['event'];
    const check = checkMembershipTemplate(template, { roomId, userId, membership });
    if (!check.ok || !isObject(template)) throw new MatrixError(502, 'M_UNKNOWN', `${server} answered ${make} with a bad template: ${check.ok ? '' : check.reason}`);

    const content: JsonObject = { ...(template['content'] as JsonObject) };
    for (const [key, value] of Object.entries(request.content ?? {})) {
      if (key !== 'join_authorised_via_users_server') content[key] = value;
    }
    content['membership'] = membership;
    let event: RoomEvent;
    try {
      const pdu = buildPdu(
        {
          room_id: roomId,
          sender: userId,
          type: 'm.room.member',
          state_key: userId,
          content,
          origin_server_ts: this.now(),
          depth: template['depth'] as number,
          prev_events: template['prev_events'] as unknown as EventRefInput[],
          auth_events: template['auth_events'] as unknown as EventRefInput[],
        },
        version,
      );
      event = toRoomEvent(signPdu(pdu, version, this.serverName, this.options.signingKey), version);
    } catch (err) {
      throw new MatrixError(502, 'M_UNKNOWN', `${server}'s ${make} template cannot make an event: ${(err as Error).message}`);
    }
    const wirePdu = toWirePdu(event, version) as unknown as JsonObject;
    if (membership === 'join') {
      const answer = await client.request<JsonObject>({ destination: server, method: 'PUT', path: `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(event.event_id)}`, body: wirePdu });
      return this.completeJoin(server, event, version, answer);
    }
    if (membership === 'leave') {
      await client.request<JsonObject>({ destination: server, method: 'PUT', path: `/_matrix/federation/v2/send_leave/${enc(roomId)}/${enc(event.event_id)}`, body: wirePdu });
      return this.writer.serialise(roomId, async () => {
        if (!(await this.rooms.getEvent(event.event_id))) await this.storeOutOfRoom(event, {});
        return { event_id: event.event_id };
      });
    }
    const answer = await client.request<JsonObject>({ destination: server, method: 'PUT', path: `/_matrix/federation/v1/send_knock/${enc(roomId)}/${enc(event.event_id)}`, body: wirePdu });
    const knockState = Array.isArray(answer['knock_room_state']) ? (answer['knock_room_state'] as JsonValue[]) : [];
    return this.writer.serialise(roomId, async () => {
      if (!(await this.rooms.getEvent(event.event_id))) await this.storeOutOfRoom(event, { knock_room_state: stripReceivedState(knockState) });
      return { event_id: event.event_id };
    });
  }

  /**
   * A leave no server took (the inviting server is gone or refuses): made
   * here from the user's invite or knock so the invite is gone from their
   * /sync (the rest of the room never sees it). Null if there is nothing to leave.
   */
  private async leaveLocally(request: RemoteMembershipRequest): Promise<RemoteMembershipResponse | null> {
    const current = await this.rooms.getMembership(request.room_id, request.user_id);
    if (!current || (current.membership !== 'invite' && current.membership !== 'knock')) return null;
    const record = await this.rooms.getEvent(current.event_id);
    if (!record) return null;
    const previous = eventOf(record);
    const version = getRoomVersion(String(await this.roomVersionOfInvite(previous))) ?? ROOM_VERSIONS['10'];
    const ref: EventRefInput = version.eventIdFormat === 'explicit' ? eventReference(previous, version) : previous.event_id;
    const pdu = buildPdu(
      {
        room_id: request.room_id,
        sender: request.user_id,
        type: 'm.room.member',
        state_key: request.user_id,
        content: { ...(request.content ?? {}), membership: 'leave' },
        origin_server_ts: this.now(),
        depth: previous.depth + 1,
        prev_events: [ref],
        auth_events: [ref],
      },
      version,
    );
    const event = toRoomEvent(signPdu(pdu, version, this.serverName, this.options.signingKey), version);
    return this.writer.serialise(request.room_id, async () => {
      await this.storeOutOfRoom(event, {});
      return { event_id: event.event_id };
    });
  }

  /** The room version of a room known only from an invite or knock: the room record, else the stripped create event. */
  private async roomVersionOfInvite(event: RoomEvent): Promise<string> {
    const room = await this.rooms.getRoom(event.room_id);
    if (room) return room.version;
    const record = await this.rooms.getEvent(event.event_id);
    const unsigned = record ? (JSON.parse(record.unsigned) as JsonObject) : {};
    const state = unsigned['invite_room_state'] ?? unsigned['knock_room_state'];
    if (Array.isArray(state)) {
      for (const entry of state) {
        if (isObject(entry) && entry['type'] === 'm.room.create' && isObject(entry['content'])) return String(entry['content']['room_version'] ?? '1');
      }
    }
    return '10';
  }

  /**
   * The end of a join through `server` (joins-v2.yaml send_join response):
   * every state and auth chain event is checked (room, signatures, hashes;
   * then the auth rules against its own auth events, in depth order), the
   * room's create event must match the version, and the join must pass the
   * auth rules against the returned state. Then the room is stored: events
   * as outliers, the state as current state (and its state group and state
   * log entries, which /sync reads), and the join through the writer.
   */
  private async completeJoin(server: string, ourJoin: RoomEvent, version: RoomVersion, answer: JsonObject): Promise<RemoteMembershipResponse> {
    const input = this.requireInput();
    const roomId = ourJoin.room_id;
    const bad = (reason: string): MatrixError => new MatrixError(502, 'M_UNKNOWN', `${server}'s send_join answer: ${reason}`);
    if (await this.isResident(roomId)) {
      // Already in the room (a restricted join another server authorised): the join is one more
      // PDU of a room this server has, taken like one from `server`'s transaction (missing prev
      // events fetched from it), with the authoriser's signature the answer carries.
      const signed = isObject(answer['event']) ? answer['event'] : (toWirePdu(ourJoin, version) as unknown as JsonObject);
      const results = await input.receivePdus(server, roomId, [signed]);
      const error = results[ourJoin.event_id]?.error;
      if (error !== undefined || !(ourJoin.event_id in results)) throw Errors.forbidden(`The join was not accepted: ${error ?? 'dropped'}`);
      return { event_id: ourJoin.event_id };
    }
    const stateIn = Array.isArray(answer['state']) ? answer['state'] : null;
    const chainIn = Array.isArray(answer['auth_chain']) ? answer['auth_chain'] : null;
    if (!stateIn || !chainIn) throw bad('no state or auth_chain');

    // The join as the resident server returns it carries the authorising server's signature (restricted rooms).
    let join = ourJoin;
    if (isObject(answer['event'])) {
      try {
        const returned = toRoomEvent(answer['event'] as unknown as Pdu, version);
        if (returned.event_id === ourJoin.event_id) join = { ...ourJoin, signatures: { ...returned.signatures, ...ourJoin.signatures } };
      } catch {
        // A malformed `event` is ignored: ours is the same event without the extra signature.
      }
    }

    // Receipt steps 1–3 for every event (format, room, signatures, hashes); dropped ones are left out.
    const verified = await verifyPdus([...chainIn, ...stateIn], version, this.requireKeyRing(), roomId);
    const events = new Map<string, RoomEvent>();
    const stateIds = new Set<string>();
    verified.forEach((v, i) => {
      if (!v.ok || v.event.state_key === undefined) return;
      events.set(v.event.event_id, v.event);
      if (i >= chainIn.length) stateIds.add(v.event.event_id);
    });
    const create = [...events.values()].find((e) => e.type === 'm.room.create' && e.state_key === '' && stateIds.has(e.event_id));
    if (!create) throw bad('the state has no valid m.room.create event');
    const createVersion = typeof create.content['room_version'] === 'string' ? create.content['room_version'] : '1';
    if (createVersion !== version.id) throw bad(`the create event says room version ${createVersion}, make_join said ${version.id}`);

    return this.writer.inRoom(roomId, async (persist) => {
      if ((await this.rooms.getMembership(roomId, join.state_key as string))?.event_id === join.event_id) return { event_id: join.event_id };
      const creator = typeof create.content['creator'] === 'string' ? create.content['creator'] : create.sender;
      await this.rooms.createRoom({ roomId, version: version.id, creator });
      const room = (await this.rooms.getRoom(roomId)) as RoomRecord;
      // Step 4 for each (auth order, against its own auth events), stored as outliers; the
      // resident server's state is taken as the state before the join, so no state resolution.
      const outcomes = await input.storeOutliers(room, version, [...events.values()]);
      const state = new Map<StateKey, RoomEvent>();
      for (const id of stateIds) {
        const event = events.get(id) as RoomEvent;
        if (outcomes.get(id)?.rejected) continue;
        const key = stateKey(event.type, event.state_key as string);
        // Two events for one key: the answer is malformed; keep the deeper one.
        const other = state.get(key);
        if (!other || other.depth < event.depth) state.set(key, event);
      }
      if (!state.has(stateKey('m.room.create', ''))) throw bad('the m.room.create event was rejected');
      const joinVerdict = authorizeEvent(join, (t, k) => state.get(stateKey(t, k)), version, { verifySignature: (e, s) => isObject(e.signatures?.[s]) });
      if (!joinVerdict.allowed) throw Errors.forbidden(`The room refuses the join: ${joinVerdict.reason}`);

      const ids = new Map<StateKey, string>([...state].map(([k, e]) => [k, e.event_id]));
      const records = new Map((await this.rooms.getEvents([...ids.values()])).map((r) => [r._id, r]));
      await this.rooms.replaceCurrentState(roomId, ids, records);
      const group = await this.rooms.storeStateGroup(roomId, `${join.event_id}/before`, ids, null);
      await this.rooms.setCurrentStateGroup(roomId, group);
      // The state as the room's line of history starts here: one position before the join
      // (what /sync, /members at a position and history visibility read).
      const position = await this.rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
        await this.rooms.logState(roomId, [...state.values()], stream);
        return stream;
      });
      for (const event of state.values()) {
        if (event.type !== 'm.room.member' || event.state_key === undefined) continue;
        const existing = await this.rooms.getMembership(roomId, event.state_key);
        if (existing?.event_id === event.event_id) continue;
        await this.rooms.setMembership(event, position);
      }
      await this.rooms.markApplied(roomId, position);
      // A room this server was in before: its old forward extremities are not built on, the
      // join (on the resident server's extremities) becomes the only one.
      const stale = (await this.rooms.forwardExtremities(roomId)).map((x) => x.event_id).filter((id) => id !== join.event_id);
      if (stale.length > 0) await this.rooms.updateExtremities(join, stale);
      // The join itself: this server's own event, on the state the resident server gave.
      await persist(join, version);
      return { event_id: join.event_id };
    });
  }

  /** The candidate servers for a room the local user wants to join and this server is not in (after the client's). */
  static fallbackServers(roomId: string): string[] {
    const parsed = parseRoomId(roomId);
    return parsed?.kind === 'domain' ? [parsed.domain] : [];
  }
}
