import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { USER_DATA_STREAMS, type StreamPositionSource, type WakeSync } from './streams';

/**
 * Account data, global and per room (client-server-api "Client Config"),
 * and room tags, which are the room account data of type `m.tag` ("Room
 * Tagging": "The tags on a room are received as single `m.tag` event in the
 * `account_data` section of a room").
 *
 * One document per (user, room or none, type); its `content` is the client's
 * JSON as a string (ARCHITECTURE.md "Storage": client JSON stays a string)
 * and `stream` is the position of its last write on the `account_data`
 * stream, so /sync reads "what changed in (from, to]" with one range query.
 */
export interface AccountDataRecord extends Doc {
  _id: string; // user_id \n room_id ('' when global) \n type
  user_id: string;
  /** '' for global account data. */
  room_id: string;
  type: string;
  content: string;
  stream: number;
}

export interface AccountDataEvent {
  type: string;
  content: Record<string, unknown>;
}

/** What changed for a user between two positions: global events and per-room events. */
export interface AccountDataChanges {
  global: AccountDataEvent[];
  rooms: Record<string, AccountDataEvent[]>;
}

export type TagContent = Record<string, unknown>;

/** Attempts at a compare-and-set before giving up (each loss means another write landed in between). */
const MAX_CAS_ATTEMPTS = 20;

function recordId(userId: string, roomId: string | null, type: string): string {
  return `${userId}\n${roomId ?? ''}\n${type}`;
}

function parseObject(json: string): Record<string, unknown> {
  const value: unknown = JSON.parse(json);
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

export class AccountDataStore {
  private constructor(
    private readonly records: Collection<AccountDataRecord>,
    private readonly positions: StreamPositionSource,
    private readonly wake: WakeSync,
  ) {}

  static async open(store: DocumentStore, positions: StreamPositionSource, wake: WakeSync): Promise<AccountDataStore> {
    const records = await store.collection<AccountDataRecord>({
      name: 'account_data',
      indexes: [{ fields: ['user_id', 'stream'] }],
    });
    return new AccountDataStore(records, positions, wake);
  }

  /** The content of one type, or null if never set. */
  async get(userId: string, roomId: string | null, type: string): Promise<Record<string, unknown> | null> {
    const record = await this.records.get(recordId(userId, roomId, type));
    return record ? parseObject(record.content) : null;
  }

  /**
   * Sets one type's content. Two concurrent writes of the same type keep the
   * one with the later position, so what a client last saw in /sync is what
   * stays stored.
   */
  async set(userId: string, roomId: string | null, type: string, content: Record<string, unknown>): Promise<number> {
    const json = JSON.stringify(content);
    const id = recordId(userId, roomId, type);
    const position = await this.positions.withPosition(USER_DATA_STREAMS.accountData, async (position) => {
      const doc: AccountDataRecord = { _id: id, user_id: userId, room_id: roomId ?? '', type, content: json, stream: position };
      if (!(await this.records.insert(doc))) {
        await this.records.update(id, { content: json, stream: position }, { stream: { $lt: position } });
      }
      return position;
    });
    await this.wake({ stream: USER_DATA_STREAMS.accountData, position, user_ids: [userId] });
    return position;
  }

  /** The `tags` object of a room's `m.tag` account data (`{}` if none). */
  async getTags(userId: string, roomId: string): Promise<Record<string, TagContent>> {
    const content = await this.get(userId, roomId, 'm.tag');
    const tags = content?.tags;
    return typeof tags === 'object' && tags !== null && !Array.isArray(tags) ? (tags as Record<string, TagContent>) : {};
  }

  /** Adds or replaces one tag (PUT …/tags/{tag}). */
  setTag(userId: string, roomId: string, tag: string, content: TagContent): Promise<number> {
    return this.updateTags(userId, roomId, (tags) => {
      tags[tag] = content;
      return true;
    });
  }

  /** Removes one tag (DELETE …/tags/{tag}); no write when the tag was not set (answers the current position). */
  deleteTag(userId: string, roomId: string, tag: string): Promise<number> {
    return this.updateTags(userId, roomId, (tags) => {
      if (!Object.prototype.hasOwnProperty.call(tags, tag)) return false;
      delete tags[tag];
      return true;
    });
  }

  /**
   * Read-modify-write of the `m.tag` document as a compare-and-set on its
   * stream position: the storage port has no transactions (ARCHITECTURE.md
   * rule 4), and two devices tagging at once must not lose a tag.
   */
  private async updateTags(userId: string, roomId: string, change: (tags: Record<string, TagContent>) => boolean): Promise<number> {
    const id = recordId(userId, roomId, 'm.tag');
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.records.get(id);
      const content = current ? parseObject(current.content) : {};
      const existing = content.tags;
      const tags: Record<string, TagContent> =
        typeof existing === 'object' && existing !== null && !Array.isArray(existing) ? { ...(existing as Record<string, TagContent>) } : {};
      if (!change(tags)) return current?.stream ?? 0;
      const json = JSON.stringify({ ...content, tags });
      const written = await this.positions.withPosition(USER_DATA_STREAMS.accountData, async (position) => {
        const ok = current
          ? await this.records.update(id, { content: json, stream: position }, { stream: current.stream })
          : await this.records.insert({ _id: id, user_id: userId, room_id: roomId, type: 'm.tag', content: json, stream: position });
        return ok ? position : null;
      });
      if (written !== null) {
        await this.wake({ stream: USER_DATA_STREAMS.accountData, position: written, user_ids: [userId] });
        return written;
      }
    }
    throw new Error(`m.tag of ${userId} in ${roomId}: too many concurrent writes`);
  }

  /**
   * Read-modify-write of one type's content as a compare-and-set on the
   * document's stream position (as updateTags does), for server-managed types
   * whose writers edit part of the content (`m.push_rules`: the push rules
   * API). `change` gets the current content (null if never set) and returns
   * the new one; it may run again if another write lands in between, and may
   * throw to refuse (nothing is written). Returns the new content.
   */
  async update<T extends Record<string, unknown>>(userId: string, roomId: string | null, type: string, change: (current: Record<string, unknown> | null) => T): Promise<T> {
    const id = recordId(userId, roomId, type);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.records.get(id);
      const next = change(current ? parseObject(current.content) : null);
      const json = JSON.stringify(next);
      const written = await this.positions.withPosition(USER_DATA_STREAMS.accountData, async (position) => {
        const ok = current
          ? await this.records.update(id, { content: json, stream: position }, { stream: current.stream })
          : await this.records.insert({ _id: id, user_id: userId, room_id: roomId ?? '', type, content: json, stream: position });
        return ok ? position : null;
      });
      if (written !== null) {
        await this.wake({ stream: USER_DATA_STREAMS.accountData, position: written, user_ids: [userId] });
        return next;
      }
    }
    throw new Error(`${type} of ${userId}: too many concurrent writes`);
  }

  /** Everything of the user written in `(from, to]` (an initial sync passes from = 0: everything). */
  async changes(userId: string, from: number, to: number): Promise<AccountDataChanges> {
    const records = await this.records.find({ user_id: userId, stream: { $gt: from, $lte: to } }, { sort: { stream: 1 } });
    const out: AccountDataChanges = { global: [], rooms: {} };
    for (const record of records) {
      const event = { type: record.type, content: parseObject(record.content) };
      if (record.room_id === '') out.global.push(event);
      else (out.rooms[record.room_id] ??= []).push(event);
    }
    return out;
  }

  safePosition(): Promise<number> {
    return this.positions.safePosition(USER_DATA_STREAMS.accountData);
  }
}
