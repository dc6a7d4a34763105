import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * The user directory index (data/api/client-server/users.yaml,
 * POST /user_directory/search), kept incrementally from the room output log
 * by UserDirectoryIndexer instead of scanning rooms per request.
 *
 * Collections (storage rules of libs/storage/src/port.ts: top-level scalar
 * fields or string arrays, no transactions, every write idempotent or
 * conditional):
 *
 * - `user_directory_entries`: one per (room, user) who ever joined, from the
 *   user's latest member event in the room: joined or not, the per-room
 *   display name and avatar, the search terms, and the event's stream
 *   position. It is the truth: a search hit counts only if its entry still
 *   holds the term and is joined.
 * - `user_directory_terms`: one per (term, room, user) of a joined entry,
 *   keyed `term \n room \n user` so a word-prefix search is a range read on
 *   `_id`. A hint: a crash between writes can leave a stale one, which the
 *   entry check drops.
 * - `user_directory_rooms`: per (room, kind) whether the room's join rule is
 *   `public` or its history visibility `world_readable` (users.yaml: users in
 *   such rooms are visible to every searcher), with the event's position.
 * - `user_directory_cursor`: how far the log has been applied.
 *
 * Writes apply an event only over an older one (compare-and-set on
 * `stream`), so two client-api replicas applying overlapping batches, or a
 * replay after a crash, converge on the latest event.
 */

export interface DirectoryEntryRecord extends Doc {
  _id: string; // room_id \n user_id
  room_id: string;
  user_id: string;
  joined: boolean;
  display_name: string | null;
  avatar_url: string | null;
  /** Lower-cased words of the user ID and the display name (see directoryTerms). */
  terms: string[];
  /** Position of the member event this entry reflects. */
  stream: number;
}

export interface DirectoryTermRecord extends Doc {
  _id: string; // term \n room_id \n user_id
  term: string;
  room_id: string;
  user_id: string;
}

export interface DirectoryRoomRecord extends Doc {
  _id: string; // room_id \n kind
  room_id: string;
  /** The room's join rule is `public` (kind join_rule) or its history visibility `world_readable` (kind history_visibility). */
  public: boolean;
  stream: number;
}

interface CursorRecord extends Doc {
  _id: string;
  position: number;
}

export type RoomPublicity = 'join_rule' | 'history_visibility';

/** A term longer than this is cut (a query word is cut the same way, so prefix matching still works). */
export const MAX_TERM_LENGTH = 64;
/** Terms kept per entry: a 256-character display name has at most this many useful words. */
export const MAX_TERMS = 48;
/** Query words used; the rest of a long search term is ignored. */
export const MAX_QUERY_WORDS = 8;
/** Compare-and-set attempts on one entry before giving up (each loss means a newer write landed). */
const MAX_CAS_ATTEMPTS = 5;
const CURSOR_ID = 'output';
/** The highest code point: in UTF-8 byte order (SQLite BINARY, MongoDB) it sorts after every character. */
const MAX_CHAR = '\u{10FFFF}';

const SEP = '\n';
const entryId = (roomId: string, userId: string): string => `${roomId}${SEP}${userId}`;
const termId = (term: string, roomId: string, userId: string): string => `${term}${SEP}${roomId}${SEP}${userId}`;

/**
 * Words of a text, case-folded: NFKC, lower case, split on anything that is
 * not a letter, mark or digit. users.yaml asks for a case-insensitive search
 * "on user IDs and display names"; matching each query word as a prefix of a
 * word (as Synapse does) finds "Alice Smith" by "smi" and "@alice.b:x.org" by
 * "@alice:x" without a substring index.
 */
export function words(text: string): string[] {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .split(/[^\p{L}\p{M}\p{N}]+/u)
    .filter((w) => w.length > 0)
    .map((w) => w.slice(0, MAX_TERM_LENGTH));
}

/** The search terms of a user in a room: the words of the user ID and of the display name, at most MAX_TERMS. */
export function directoryTerms(userId: string, displayName: string | null): string[] {
  const terms = new Set<string>(words(userId));
  if (displayName) for (const w of words(displayName)) terms.add(w);
  return [...terms].slice(0, MAX_TERMS);
}

/** The words of a search term to match (at most MAX_QUERY_WORDS, longest first: the longest is the most selective). */
export function queryWords(searchTerm: string): string[] {
  return [...new Set(words(searchTerm.slice(0, 1024)))].sort((a, b) => b.length - a.length).slice(0, MAX_QUERY_WORDS);
}

/** Does every query word prefix some term of the entry? */
export function entryMatches(entry: Pick<DirectoryEntryRecord, 'terms'>, query: readonly string[]): boolean {
  return query.every((q) => entry.terms.some((t) => t.startsWith(q)));
}

export interface MemberUpdate {
  roomId: string;
  userId: string;
  joined: boolean;
  displayName: string | null;
  avatarUrl: string | null;
  stream: number;
}

export class UserDirectoryStore {
  private constructor(
    private readonly entries: Collection<DirectoryEntryRecord>,
    private readonly terms: Collection<DirectoryTermRecord>,
    private readonly rooms: Collection<DirectoryRoomRecord>,
    private readonly cursors: Collection<CursorRecord>,
  ) {}

  static async open(store: DocumentStore): Promise<UserDirectoryStore> {
    return new UserDirectoryStore(
      await store.collection<DirectoryEntryRecord>({ name: 'user_directory_entries' }),
      // Searched by `_id` range only (the primary key in both adapters).
      await store.collection<DirectoryTermRecord>({ name: 'user_directory_terms' }),
      await store.collection<DirectoryRoomRecord>({ name: 'user_directory_rooms' }),
      await store.collection<CursorRecord>({ name: 'user_directory_cursor' }),
    );
  }

  /**
   * Applies a member event of (room, user) unless the entry already reflects
   * a later one. Order: new term records first, then the entry
   * (compare-and-set), then the old terms it no longer has are removed, so a
   * joined entry's terms always have their records (a crash leaves at most
   * extra records, which searches skip).
   */
  async applyMember(update: MemberUpdate): Promise<void> {
    const id = entryId(update.roomId, update.userId);
    const terms = update.joined ? directoryTerms(update.userId, update.displayName) : [];
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.entries.get(id);
      if (current && current.stream >= update.stream) return;
      for (const term of terms) {
        await this.terms.insert({ _id: termId(term, update.roomId, update.userId), term, room_id: update.roomId, user_id: update.userId });
      }
      const fields = { joined: update.joined, display_name: update.displayName, avatar_url: update.avatarUrl, terms, stream: update.stream };
      const written = current
        ? await this.entries.update(id, fields, { stream: current.stream })
        : await this.entries.insert({ _id: id, room_id: update.roomId, user_id: update.userId, ...fields });
      if (!written) continue;
      const kept = new Set(terms);
      for (const old of current?.terms ?? []) {
        if (!kept.has(old)) await this.terms.delete(termId(old, update.roomId, update.userId));
      }
      return;
    }
  }

  /** Records whether a room is public in one respect (join rule or history visibility), unless a later event did. */
  async applyRoom(roomId: string, kind: RoomPublicity, isPublic: boolean, stream: number): Promise<void> {
    const id = `${roomId}${SEP}${kind}`;
    if (await this.rooms.insert({ _id: id, room_id: roomId, public: isPublic, stream })) return;
    await this.rooms.update(id, { public: isPublic, stream }, { stream: { $lt: stream } });
  }

  /** The rooms among `roomIds` whose join rule is public or whose history is world_readable. */
  async publicRooms(roomIds: readonly string[]): Promise<Set<string>> {
    if (roomIds.length === 0) return new Set();
    const ids = roomIds.flatMap((r) => [`${r}${SEP}join_rule`, `${r}${SEP}history_visibility`]);
    const found = await this.rooms.getMany(ids);
    return new Set(found.filter((r) => r.public).map((r) => r.room_id));
  }

  /**
   * Term records whose term starts with `prefix`, in `_id` order after
   * `after` (exclusive), at most `limit`: one page of a word-prefix search.
   */
  termsWithPrefix(prefix: string, after: string | null, limit: number): Promise<DirectoryTermRecord[]> {
    const range = after === null ? { $gte: prefix, $lt: prefix + MAX_CHAR } : { $gt: after, $lt: prefix + MAX_CHAR };
    return this.terms.find({ _id: range }, { sort: { _id: 1 }, limit });
  }

  /** Entries of the given (room, user) pairs, keyed `room \n user`. */
  async entriesOf(pairs: ReadonlyArray<{ room_id: string; user_id: string }>): Promise<Map<string, DirectoryEntryRecord>> {
    if (pairs.length === 0) return new Map();
    const found = await this.entries.getMany([...new Set(pairs.map((p) => entryId(p.room_id, p.user_id)))]);
    return new Map(found.map((e) => [e._id, e]));
  }

  static entryKey(roomId: string, userId: string): string {
    return entryId(roomId, userId);
  }

  // ---- the indexer's cursor in the room output log ----

  async cursor(): Promise<number> {
    return (await this.cursors.get(CURSOR_ID))?.position ?? 0;
  }

  /** Moves the cursor from `from` to `to` (compare-and-set); false if another replica moved it first. */
  async advanceCursor(from: number, to: number): Promise<boolean> {
    if (from === 0 && (await this.cursors.insert({ _id: CURSOR_ID, position: to }))) return true;
    return this.cursors.update(CURSOR_ID, { position: to }, { position: from });
  }
}
