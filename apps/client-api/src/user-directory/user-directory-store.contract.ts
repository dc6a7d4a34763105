import type { DocumentStore } from '@atrium/storage';
import { UserDirectoryStore } from './user-directory-store';

/** The user directory index on one adapter (SQLite and FerretDB run the same cases). */
export function describeUserDirectoryStore(name: string, open: () => Promise<DocumentStore>): void {
  describe(`UserDirectoryStore (${name})`, () => {
    let store: DocumentStore;
    let directory: UserDirectoryStore;
    let n = 0;
    const room = (): string => `!r${++n}-${Date.now()}:x`;

    beforeAll(async () => {
      store = await open();
      directory = await UserDirectoryStore.open(store);
    });
    afterAll(async () => {
      await store?.close();
    });

    async function find(prefix: string): Promise<string[]> {
      return (await directory.termsWithPrefix(prefix, null, 100)).map((t) => `${t.term} ${t.user_id}`);
    }

    it('finds a joined member by a word prefix of the user ID or display name, case-insensitively', async () => {
      const r = room();
      await directory.applyMember({ roomId: r, userId: '@zed.quux:x', joined: true, displayName: 'Zorro Ümlaut', avatarUrl: 'mxc://x/a', stream: 10 });
      expect(await find('quu')).toContain('quux @zed.quux:x');
      expect(await find('zorr')).toContain('zorro @zed.quux:x');
      expect(await find('ümla')).toContain('ümlaut @zed.quux:x');
      const entries = await directory.entriesOf([{ room_id: r, user_id: '@zed.quux:x' }]);
      expect([...entries.values()][0]).toMatchObject({ joined: true, display_name: 'Zorro Ümlaut', avatar_url: 'mxc://x/a', stream: 10 });
    });

    it('applies a rename and a leave over older events only, and drops the old terms', async () => {
      const r = room();
      await directory.applyMember({ roomId: r, userId: '@yara:x', joined: true, displayName: 'Yellowtail', avatarUrl: null, stream: 20 });
      await directory.applyMember({ roomId: r, userId: '@yara:x', joined: true, displayName: 'Ybarra', avatarUrl: null, stream: 21 });
      expect(await find('yellowt')).toEqual([]);
      expect(await find('ybarr')).toEqual(['ybarra @yara:x']);
      // An older event applied late (another replica's batch) changes nothing.
      await directory.applyMember({ roomId: r, userId: '@yara:x', joined: true, displayName: 'Yellowtail', avatarUrl: null, stream: 20 });
      expect(await find('yellowt')).toEqual([]);
      await directory.applyMember({ roomId: r, userId: '@yara:x', joined: false, displayName: null, avatarUrl: null, stream: 22 });
      expect(await find('ybarr')).toEqual([]);
      const entry = (await directory.entriesOf([{ room_id: r, user_id: '@yara:x' }])).values().next().value;
      expect(entry).toMatchObject({ joined: false, terms: [], stream: 22 });
    });

    it('pages a prefix range in _id order without repeating or missing records', async () => {
      const r = room();
      for (let i = 0; i < 7; i++) {
        await directory.applyMember({ roomId: r, userId: `@pager${i}:x`, joined: true, displayName: null, avatarUrl: null, stream: 100 + i });
      }
      const seen: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 10; page++) {
        const records = await directory.termsWithPrefix('pager', after, 3);
        seen.push(...records.map((t) => t.user_id));
        if (records.length < 3) break;
        after = records[records.length - 1]._id;
      }
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `@pager${i}:x`));
    });

    it('records which rooms are public by join rule or world_readable history, latest event winning', async () => {
      const [a, b, c] = [room(), room(), room()];
      await directory.applyRoom(a, 'join_rule', true, 5);
      await directory.applyRoom(b, 'history_visibility', true, 5);
      await directory.applyRoom(c, 'join_rule', true, 5);
      await directory.applyRoom(c, 'join_rule', false, 6);
      await directory.applyRoom(c, 'join_rule', true, 4);
      expect(await directory.publicRooms([a, b, c, room()])).toEqual(new Set([a, b]));
    });

    it('moves its cursor by compare-and-set', async () => {
      const from = await directory.cursor();
      expect(await directory.advanceCursor(from, from + 5)).toBe(true);
      expect(await directory.advanceCursor(from, from + 9)).toBe(false);
      expect(await directory.cursor()).toBe(from + 5);
    });
  });
}
