/**
 * Builds hand-made room event graphs for the state resolution tests and the
 * benchmark: readable event IDs (`$PL2:example.org`), no hashes or signatures
 * (state resolution never looks at them), and forks that each track their own
 * state, so a test reads like the story it tells ("on one side Alice demotes
 * Bob; on the other Bob bans Evelyn").
 *
 * Every event gets its `auth_events` from its branch's state by the auth
 * events selection algorithm (event-auth's `authEventKeys`) and, unless told
 * otherwise, is checked with the real authorization rules against that state,
 * so a scenario cannot be built from events that no server would accept.
 */
import { authEventKeys, authorizeEvent } from '../../event-auth';
import {
  stateKey,
  type EventReferenceV1,
  type JsonObject,
  type RoomEvent,
  type StateKey,
  type StateMap,
} from '../../events/pdu';
import { ROOM_VERSIONS, type RoomVersion, type RoomVersionId } from '../../room-versions';
import type { LoadEvents } from '../types';

export const SERVER_NAME = 'example.org';

/** `alice` → `@alice:example.org`; full user IDs pass through. */
export function userId(name: string): string {
  return name.startsWith('@') ? name : `@${name}:${SERVER_NAME}`;
}

/** `PL2` → `$PL2:example.org`; full event IDs pass through. */
export function eventId(name: string): string {
  return name.startsWith('$') ? name : `$${name}:${SERVER_NAME}`;
}

/** `$PL2:example.org` → `PL2`, for readable assertions. */
export function shortId(id: string): string {
  return id.replace(/^\$/, '').replace(`:${SERVER_NAME}`, '');
}

export interface SendOptions {
  /** Short name of the event ID (`PL2`) or a full ID. */
  id: string;
  type: string;
  stateKey?: string;
  /** Short name (`alice`) or a full user ID. */
  sender: string;
  content: JsonObject;
  /** origin_server_ts; by default the room's clock, one tick per event. */
  ts?: number;
  /** Explicit auth events (short names); by default selected from the branch state. */
  authEvents?: string[];
  /** Skip the authorization check against the branch state. */
  unchecked?: boolean;
}

export class TestRoom {
  readonly version: RoomVersion;
  readonly roomId: string;
  readonly events = new Map<string, RoomEvent>();
  private clock = 1_000;

  constructor(versionId: RoomVersionId, createName = 'CREATE') {
    this.version = ROOM_VERSIONS[versionId];
    // Room version 12 derives the room ID from the create event's ID; the
    // others take any opaque ID.
    this.roomId = this.version.roomIdFromCreateEvent ? `!${eventId(createName).slice(1)}` : `!room:${SERVER_NAME}`;
  }

  tick(): number {
    return this.clock++;
  }

  /** A loader over every event of the room, recording the batches it is asked for. */
  loader(): { load: LoadEvents; calls: string[][] } {
    const calls: string[][] = [];
    const load: LoadEvents = async (ids) => {
      calls.push(ids);
      const found = new Map<string, RoomEvent>();
      for (const id of ids) {
        const event = this.events.get(id);
        if (event) found.set(id, event);
      }
      return found;
    };
    return { load, calls };
  }

  /** An empty branch (only for the create event). */
  root(): Branch {
    return new Branch(this, new Map(), [], 0);
  }
}

export class Branch {
  constructor(
    readonly room: TestRoom,
    readonly state: StateMap,
    private heads: string[],
    private depth: number,
  ) {}

  /** A new branch starting from this one's current state and head. */
  fork(): Branch {
    return new Branch(this.room, new Map(this.state), [...this.heads], this.depth);
  }

  get(type: string, key = ''): RoomEvent | undefined {
    return this.state.get(stateKey(type, key));
  }

  send(options: SendOptions): RoomEvent {
    const room = this.room;
    const version = room.version;
    const id = eventId(options.id);
    if (room.events.has(id)) throw new Error(`duplicate event ${id}`);
    const sender = userId(options.sender);
    const draft = { type: options.type, state_key: options.stateKey, sender, content: options.content };

    let authIds: string[];
    if (options.authEvents) {
      authIds = options.authEvents.map(eventId);
    } else if (options.type === 'm.room.create') {
      authIds = [];
    } else {
      authIds = [];
      for (const [type, key] of authEventKeys(draft, version)) {
        if (version.roomIdFromCreateEvent && type === 'm.room.create') continue;
        const current = this.state.get(stateKey(type, key));
        if (current && !authIds.includes(current.event_id)) authIds.push(current.event_id);
      }
    }
    const reference = (ref: string): string | EventReferenceV1 =>
      version.eventIdFormat === 'explicit' ? [ref, { sha256: 'unhashed' }] : ref;

    const event: RoomEvent = {
      event_id: id,
      room_id: room.roomId,
      sender,
      type: options.type,
      content: options.content,
      origin_server_ts: options.ts ?? room.tick(),
      depth: this.depth + 1,
      prev_events: this.heads.map(reference) as string[] | EventReferenceV1[],
      auth_events: authIds.map(reference) as string[] | EventReferenceV1[],
      hashes: { sha256: 'unhashed' },
      signatures: { [SERVER_NAME]: { 'ed25519:test': 'unsigned' } },
    };
    if (options.stateKey !== undefined) event.state_key = options.stateKey;

    if (!options.unchecked) {
      const result = authorizeEvent(event, (type, key) => this.state.get(stateKey(type, key)), version);
      if (!result.allowed) throw new Error(`test graph: ${id} is not allowed on its branch: ${result.rule} ${result.reason}`);
    }

    room.events.set(id, event);
    this.heads = [id];
    this.depth = event.depth;
    if (event.state_key !== undefined) this.state.set(stateKey(event.type, event.state_key), event);
    return event;
  }

  /**
   * Puts an existing event into this branch's state without sending anything,
   * as if the branch had learnt it through an earlier merge. Used to hand-build
   * state sets that share (unconflicted) entries.
   */
  adopt(name: string): void {
    const event = this.room.events.get(eventId(name));
    if (!event || event.state_key === undefined) throw new Error(`no state event ${name}`);
    this.state.set(stateKey(event.type, event.state_key), event);
  }

  /** `name` sets `membership` for itself (join, leave, knock) or on `target`. */
  member(id: string, sender: string, membership: string, target = sender, extra: JsonObject = {}): RoomEvent {
    return this.send({
      id,
      type: 'm.room.member',
      stateKey: userId(target),
      sender,
      content: { membership, ...extra },
    });
  }

  powerLevels(id: string, sender: string, users: Record<string, number>, extra: JsonObject = {}): RoomEvent {
    const byId: Record<string, number> = {};
    for (const [name, level] of Object.entries(users)) byId[userId(name)] = level;
    return this.send({ id, type: 'm.room.power_levels', stateKey: '', sender, content: { users: byId, ...extra } });
  }

  joinRules(id: string, sender: string, joinRule: string, extra: JsonObject = {}): RoomEvent {
    return this.send({ id, type: 'm.room.join_rules', stateKey: '', sender, content: { join_rule: joinRule, ...extra } });
  }

  topic(id: string, sender: string, topic: string, ts?: number): RoomEvent {
    return this.send({ id, type: 'm.room.topic', stateKey: '', sender, content: { topic }, ts });
  }
}

export interface NewRoomOptions {
  creator?: string;
  /** Power levels `users` (creators are left out in v12, where they may not appear). */
  users?: Record<string, number>;
  joinRule?: string;
  /** Other power levels content (e.g. `{ invite: 50 }`). */
  powerLevels?: JsonObject;
  /** Extra join rules content (e.g. `allow` for restricted rooms). */
  joinRulesContent?: JsonObject;
  /** Room version 12: `additional_creators`. */
  additionalCreators?: string[];
}

/**
 * The usual opening of a room: create (CREATE), the creator's join (IMA),
 * power levels (IPOWER), join rules (IJR).
 */
export function newRoom(versionId: RoomVersionId, options: NewRoomOptions = {}): { room: TestRoom; main: Branch } {
  const room = new TestRoom(versionId);
  const main = room.root();
  const creator = options.creator ?? 'alice';
  const createContent: JsonObject = { room_version: versionId };
  if (!room.version.implicitRoomCreator) createContent['creator'] = userId(creator);
  if (options.additionalCreators) createContent['additional_creators'] = options.additionalCreators.map(userId);
  main.send({ id: 'CREATE', type: 'm.room.create', stateKey: '', sender: creator, content: createContent });
  main.member('IMA', creator, 'join');
  const users = options.users ?? (room.version.privilegedCreators ? {} : { [creator]: 100 });
  main.powerLevels('IPOWER', creator, users, options.powerLevels);
  main.joinRules('IJR', creator, options.joinRule ?? 'public', options.joinRulesContent);
  return { room, main };
}

/** The resolved state as `{ "type|state_key": shortEventId }`, for whole-state assertions. */
export function summarise(state: StateMap): Record<string, string> {
  const out: Record<string, string> = {};
  const keys = [...state.keys()].sort();
  for (const key of keys) out[key.replace('\u0000', '|')] = shortId((state.get(key) as RoomEvent).event_id);
  return out;
}

/** Short ID of the event at (type, state_key), or undefined. */
export function at(state: StateMap, type: string, key = ''): string | undefined {
  const event = state.get(stateKey(type, key) as StateKey);
  return event ? shortId(event.event_id) : undefined;
}
