/**
 * Test support for the authorization rules: a room whose state is a plain map,
 * events with readable IDs (`$7:example.org`), no hashes or signatures beyond
 * what a rule reads. Each `send` checks the event with the real rules against
 * the current state and, when allowed, makes it state; `check` only asks.
 */
import { stateKey, type JsonObject, type RoomEvent, type StateMap } from '../events/pdu';
import { ROOM_VERSIONS, type RoomVersion, type RoomVersionId } from '../room-versions';
import { authorizeEvent, type AuthResult, type AuthorizeOptions } from './authorize';
import { authEventKeys } from './auth-events';

export const SERVER = 'example.org';
export const ALL_VERSIONS = Object.keys(ROOM_VERSIONS) as RoomVersionId[];

/** Room versions where `predicate` holds, and where it does not. */
export function versionsWhere(predicate: (v: RoomVersion) => boolean): { yes: RoomVersionId[]; no: RoomVersionId[] } {
  const yes = ALL_VERSIONS.filter((id) => predicate(ROOM_VERSIONS[id]));
  return { yes, no: ALL_VERSIONS.filter((id) => !yes.includes(id)) };
}

/** `alice` → `@alice:example.org`; anything with `@` passes through. */
export function user(name: string): string {
  return name.startsWith('@') ? name : `@${name}:${SERVER}`;
}

export interface Draft {
  type: string;
  sender: string;
  stateKey?: string;
  content?: JsonObject;
  /** Event IDs of prev_events; by default the last event sent. */
  prev?: string[];
  /** Top-level `redacts` (v1–v10 redactions). */
  redacts?: string;
  /** Override the room ID (default: the room's). */
  roomId?: string;
  /** Override the event ID (default: the next `$n:example.org`). */
  eventId?: string;
  /** Extra signatures: server name → key ID → signature. */
  signatures?: Record<string, Record<string, string>>;
}

export interface RoomOptions {
  creator?: string;
  /** `users` of the first m.room.power_levels; `undefined` sends no power levels event at all. */
  users?: Record<string, number | string> | null;
  /** Other first power levels content (`{ invite: 50 }`). */
  powerLevels?: JsonObject;
  /** Join rule of the room; `null` sends no join rules event. */
  joinRule?: string | null;
  joinRulesContent?: JsonObject;
  additionalCreators?: string[];
  createContent?: JsonObject;
}

export class TestRoom {
  readonly version: RoomVersion;
  readonly state: StateMap = new Map();
  readonly events: RoomEvent[] = [];
  roomId: string;
  private counter = 0;
  private last: string | undefined;

  constructor(versionId: RoomVersionId) {
    this.version = ROOM_VERSIONS[versionId];
    this.roomId = `!room:${SERVER}`;
  }

  /** The state lookup the rules take. */
  readonly lookup = (type: string, key: string): RoomEvent | undefined => this.state.get(stateKey(type, key));

  /** Builds an event from a draft without checking it. */
  build(draft: Draft): RoomEvent {
    const eventId = draft.eventId ?? `$${++this.counter}:${SERVER}`;
    const isCreate = draft.type === 'm.room.create';
    if (isCreate && this.version.roomIdFromCreateEvent && !draft.roomId) this.roomId = `!${eventId.slice(1)}`;
    const prev = draft.prev ?? (this.last ? [this.last] : []);
    const auth: string[] = [];
    if (!isCreate) {
      const keys = authEventKeys({ type: draft.type, state_key: draft.stateKey, sender: user(draft.sender), content: draft.content ?? {} }, this.version);
      for (const [type, key] of keys) {
        const found = this.lookup(type, key);
        if (found) auth.push(found.event_id);
      }
    }
    const event: RoomEvent = {
      event_id: eventId,
      room_id: draft.roomId ?? this.roomId,
      sender: user(draft.sender),
      type: draft.type,
      content: draft.content ?? {},
      origin_server_ts: 1_000 + this.counter,
      depth: this.events.length + 1,
      prev_events: prev,
      auth_events: auth,
      hashes: { sha256: 'unhashed' },
      signatures: { [SERVER]: { 'ed25519:test': 'unsigned' }, ...(draft.signatures ?? {}) },
    };
    if (draft.stateKey !== undefined) event.state_key = draft.stateKey;
    if (draft.redacts !== undefined) event.redacts = draft.redacts;
    return event;
  }

  /** Authorizes a built event against the current state. */
  authorize(event: RoomEvent, options?: AuthorizeOptions): AuthResult {
    return authorizeEvent(event, this.lookup, this.version, options);
  }

  /** Builds and authorizes, without changing the room. */
  check(draft: Draft, options?: AuthorizeOptions): AuthResult {
    return this.authorize(this.build(draft), options);
  }

  /** Builds, authorizes and, if allowed, applies the event. Returns the verdict and the event. */
  send(draft: Draft, options?: AuthorizeOptions): { result: AuthResult; event: RoomEvent } {
    const event = this.build(draft);
    const result = this.authorize(event, options);
    if (result.allowed) this.apply(event);
    return { result, event };
  }

  /** Sends an event that must be allowed (room set-up); throws with the rule otherwise. */
  must(draft: Draft, options?: AuthorizeOptions): RoomEvent {
    const { result, event } = this.send(draft, options);
    if (!result.allowed) throw new Error(`set-up event ${draft.type} by ${draft.sender} refused: ${result.rule} ${result.check}: ${result.reason}`);
    return event;
  }

  /** Makes an event part of the room without checking it (to build states the rules would not reach). */
  apply(event: RoomEvent): void {
    this.events.push(event);
    this.last = event.event_id;
    if (event.state_key !== undefined) this.state.set(stateKey(event.type, event.state_key), event);
  }

  member(sender: string, membership: string, target = sender, extra: JsonObject = {}): Draft {
    return { type: 'm.room.member', sender, stateKey: user(target), content: { membership, ...extra } };
  }

  /** Shortcut: `send(member(...))`. */
  membership(sender: string, membership: string, target = sender, extra: JsonObject = {}): AuthResult {
    return this.send(this.member(sender, membership, target, extra)).result;
  }

  powerLevels(sender: string, content: JsonObject): Draft {
    return { type: 'm.room.power_levels', sender, stateKey: '', content };
  }
}

/**
 * The usual opening: create, the creator's join (its only prev event is the
 * create), power levels (creator at 100 before v12, where creators may not be
 * listed), join rules (public unless told).
 */
export function createRoom(versionId: RoomVersionId, options: RoomOptions = {}): TestRoom {
  const room = new TestRoom(versionId);
  const creator = options.creator ?? 'alice';
  const content: JsonObject = { room_version: versionId, ...(options.createContent ?? {}) };
  if (!room.version.implicitRoomCreator) content['creator'] = user(creator);
  if (options.additionalCreators) content['additional_creators'] = options.additionalCreators.map(user);
  room.must({ type: 'm.room.create', sender: creator, stateKey: '', content });
  room.must(room.member(creator, 'join'));
  if (options.users !== null) {
    const users: Record<string, number | string> = {};
    const given = options.users ?? (room.version.privilegedCreators ? {} : { [creator]: 100 });
    for (const [name, level] of Object.entries(given)) users[user(name)] = level;
    room.must(room.powerLevels(creator, { users, ...(options.powerLevels ?? {}) }));
  }
  if (options.joinRule !== null) {
    room.must({ type: 'm.room.join_rules', sender: creator, stateKey: '', content: { join_rule: options.joinRule ?? 'public', ...(options.joinRulesContent ?? {}) } });
  }
  return room;
}

/**
 * `users` (full user IDs) for a room created by alice: alice at 100 added before v12 (where
 * creators may not be listed and are infinitely powerful anyway).
 */
export function withCreator(versionId: RoomVersionId, users: Record<string, number | string>): Record<string, number | string> {
  const out: Record<string, number | string> = ROOM_VERSIONS[versionId].privilegedCreators ? {} : { [user('alice')]: 100 };
  for (const [name, level] of Object.entries(users)) out[user(name)] = level;
  return out;
}

/** Asserts-friendly view of a verdict: `'allow'` or `'deny <rule> <check>'`. */
export function verdict(result: AuthResult): string {
  return result.allowed ? 'allow' : `deny ${result.rule} ${result.check}`;
}
