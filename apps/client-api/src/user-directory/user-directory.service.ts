import { Inject, Injectable } from '@nestjs/common';
import type { RoomStore } from '@atrium/rooms';
import type { ProfileStore } from '@atrium/user-data';
import { UserDirectoryIndexer } from './user-directory-indexer';
import { entryMatches, queryWords, UserDirectoryStore, type DirectoryEntryRecord } from './user-directory-store';
import { USER_DIRECTORY_PROFILES, USER_DIRECTORY_ROOM_STORE } from './user-directory.tokens';

/** Term records read per page of a search. */
const PAGE = 200;
/** Pages read at most: a search stays bounded however common its word is (the answer is then `limited`). */
const MAX_PAGES = 10;
/** How long a search waits for the index to catch up with the log before answering from what it has. */
const CATCH_UP_MS = 2000;

export interface DirectoryUser {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

interface Hit {
  entry: DirectoryEntryRecord;
  /** Shares a joined room with the requester (ranked before users only seen in public rooms). */
  shared: boolean;
  /** A query word equals a whole term (ranked before prefix-only matches). */
  exact: boolean;
}

/**
 * POST /user_directory/search (data/api/client-server/users.yaml). "The
 * homeserver MUST at a minimum consider users who are visible to the
 * requester based on their membership in rooms known to the homeserver":
 * users sharing a joined room with the requester, users joined to rooms whose
 * join rule is `public` or whose history is `world_readable`, and (as other
 * servers do) users joined to rooms published in the room directory.
 *
 * A search reads the index (UserDirectoryStore) by word prefix of the most
 * selective query word, keeps hits whose entry is joined, matches every
 * query word and lies in a room the requester may see members of, and stops
 * once `limit + 1` users are found (`limited`) or MAX_PAGES pages are read.
 */
@Injectable()
export class UserDirectoryService {
  constructor(
    @Inject(USER_DIRECTORY_ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(USER_DIRECTORY_PROFILES) private readonly profiles: ProfileStore,
    private readonly directory: UserDirectoryStore,
    private readonly indexer: UserDirectoryIndexer,
  ) {}

  async search(requesterId: string, searchTerm: string, limit: number): Promise<{ results: DirectoryUser[]; limited: boolean }> {
    const query = queryWords(searchTerm);
    if (query.length === 0) return { results: [], limited: false };
    // Catch up with the log first, so a user who joined a moment ago is found (bounded wait).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.indexer.drain(), new Promise((resolve) => (timer = setTimeout(resolve, CATCH_UP_MS)))]);
    clearTimeout(timer);

    const myRooms = new Set((await this.rooms.roomsOfUser(requesterId, ['join'])).map((m) => m.room_id));
    const publicity = new Map<string, boolean>();
    const hits = new Map<string, Hit>();
    const primary = query[0];
    let after: string | null = null;
    let exhausted = false;
    for (let page = 0; page < MAX_PAGES && hits.size <= limit; page++) {
      const records = await this.directory.termsWithPrefix(primary, after, PAGE);
      if (records.length < PAGE) exhausted = true;
      if (records.length === 0) break;
      after = records[records.length - 1]._id;
      const fresh = records.filter((r) => !hits.get(r.user_id)?.shared);
      const entries = await this.directory.entriesOf(fresh);
      await this.loadPublicity(
        fresh.map((r) => r.room_id).filter((r) => !myRooms.has(r)),
        publicity,
      );
      for (const record of fresh) {
        const entry = entries.get(UserDirectoryStore.entryKey(record.room_id, record.user_id));
        // The entry is the truth: a stale term record (left, renamed) is skipped.
        if (!entry || !entry.joined || !entry.terms.includes(record.term) || !entryMatches(entry, query)) continue;
        const shared = myRooms.has(entry.room_id);
        if (!shared && !publicity.get(entry.room_id)) continue;
        const previous = hits.get(entry.user_id);
        if (previous && (previous.shared || !shared)) continue;
        hits.set(entry.user_id, { entry, shared, exact: query.some((q) => entry.terms.includes(q)) });
        if (hits.size > limit) break;
      }
      if (exhausted) break;
    }

    // users.yaml: "Ordered by rank and then whether or not profile info is available."
    const ranked = [...hits.values()].sort(
      (a, b) =>
        Number(b.exact) - Number(a.exact) ||
        Number(b.shared) - Number(a.shared) ||
        Number(b.entry.display_name !== null) - Number(a.entry.display_name !== null) ||
        (a.entry.user_id < b.entry.user_id ? -1 : a.entry.user_id > b.entry.user_id ? 1 : 0),
    );
    const results: DirectoryUser[] = [];
    for (const hit of ranked.slice(0, limit)) results.push(await this.present(hit.entry));
    return { results, limited: hits.size > limit || !exhausted };
  }

  /**
   * Whether each room makes its members visible to everyone: published in the
   * room directory (the rooms record), or join rule public / history
   * world_readable (the index). Looked up once per room per search.
   */
  private async loadPublicity(roomIds: string[], publicity: Map<string, boolean>): Promise<void> {
    const unknown = [...new Set(roomIds)].filter((r) => !publicity.has(r));
    if (unknown.length === 0) return;
    const open = await this.directory.publicRooms(unknown);
    for (const roomId of unknown) {
      publicity.set(roomId, open.has(roomId) || (await this.rooms.getRoom(roomId))?.visibility === 'public');
    }
  }

  /**
   * A result: the display name and avatar of the global profile when the
   * user has one on this server (the name they chose for everyone), else
   * those of the member event that matched.
   */
  private async present(entry: DirectoryEntryRecord): Promise<DirectoryUser> {
    const profile = await this.profiles.get(entry.user_id);
    const displayName = typeof profile['displayname'] === 'string' && profile['displayname'] !== '' ? profile['displayname'] : entry.display_name;
    const avatarUrl = typeof profile['avatar_url'] === 'string' && profile['avatar_url'] !== '' ? profile['avatar_url'] : entry.avatar_url;
    const out: DirectoryUser = { user_id: entry.user_id };
    if (displayName) out.display_name = displayName;
    if (avatarUrl) out.avatar_url = avatarUrl;
    return out;
  }
}
