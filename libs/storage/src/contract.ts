/**
 * The storage port's contract: one suite of Jest tests that every adapter
 * must pass (ARCHITECTURE.md, "Storage": a single contract suite runs against
 * both). A spec file calls `describeDocumentStoreContract` with a function
 * that opens a store on its backing database; the function may be called
 * more than once and every store it returns must see the same data (used for
 * reopening and for two writers at once).
 */
import type { Doc, DocumentStore } from './port';
import { DuplicateKeyError } from './port';

interface Item extends Doc {
  name?: string;
  n?: number;
  flag?: boolean;
  opt?: string | null;
  tags?: string[];
  v?: number;
}

const byId = (a: Doc, b: Doc): number => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0);
const ids = (docs: Doc[]): string[] => docs.map((d) => d._id);
const sortedIds = (docs: Doc[]): string[] => ids([...docs].sort(byId));

export function describeDocumentStoreContract(adapter: string, open: () => Promise<DocumentStore>): void {
  describe(`DocumentStore contract: ${adapter}`, () => {
    let store: DocumentStore;
    let counter = 0;
    /** A collection no other test touches. */
    const fresh = (indexes?: { fields: string[]; unique?: boolean }[]) =>
      store.collection<Item>({ name: `contract_${++counter}`, indexes });

    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
    });

    it('answers ping', async () => {
      expect(await store.ping()).toBe(true);
    });

    describe('insert', () => {
      it('inserts once and is idempotent on _id without changing the stored document', async () => {
        const c = await fresh();
        expect(await c.insert({ _id: 'a', name: 'first', n: 1 })).toBe(true);
        expect(await c.insert({ _id: 'a', name: 'second', n: 2 })).toBe(false);
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'first', n: 1 });
        expect(await c.count({})).toBe(1);
      });

      it('throws DuplicateKeyError on a clash with another unique index, and stores nothing', async () => {
        const c = await fresh([{ fields: ['name'], unique: true }]);
        expect(await c.insert({ _id: 'a', name: 'alice' })).toBe(true);
        await expect(c.insert({ _id: 'b', name: 'alice' })).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await c.get('b')).toBeNull();
        // The same _id still reports the idempotent case even though name clashes too.
        expect(await c.insert({ _id: 'a', name: 'alice' })).toBe(false);
        expect(await c.insert({ _id: 'c', name: 'bob' })).toBe(true);
      });

      it('enforces compound unique indexes on the combination only', async () => {
        const c = await fresh([{ fields: ['name', 'n'], unique: true }]);
        expect(await c.insert({ _id: 'a', name: 'x', n: 1 })).toBe(true);
        expect(await c.insert({ _id: 'b', name: 'x', n: 2 })).toBe(true);
        expect(await c.insert({ _id: 'c', name: 'y', n: 1 })).toBe(true);
        await expect(c.insert({ _id: 'd', name: 'x', n: 1 })).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await c.count({})).toBe(3);
      });

      it('allows the same value under a non-unique index', async () => {
        const c = await fresh([{ fields: ['name'] }]);
        expect(await c.insert({ _id: 'a', name: 'same' })).toBe(true);
        expect(await c.insert({ _id: 'b', name: 'same' })).toBe(true);
        expect(sortedIds(await c.find({ name: 'same' }))).toEqual(['a', 'b']);
      });
    });

    describe('insertMany', () => {
      it('inserts a batch and answers the _ids it inserted; an empty batch is a no-op', async () => {
        const c = await fresh([{ fields: ['n'] }]);
        const docs = Array.from({ length: 120 }, (_, i) => ({ _id: `d${String(i).padStart(3, '0')}`, n: i % 7, name: `x${i}` }));
        expect(await c.insertMany(docs)).toEqual(docs.map((d) => d._id));
        expect(await c.count({})).toBe(120);
        expect(await c.get('d042')).toEqual({ _id: 'd042', n: 0, name: 'x42' });
        expect(sortedIds(await c.find({ n: 3 }))).toEqual(docs.filter((d) => d.n === 3).map((d) => d._id));
        expect(await c.insertMany([])).toEqual([]);
        expect(await c.count({})).toBe(120);
      });

      it('skips documents whose _id is stored or repeated in the batch, leaving the first one unchanged', async () => {
        const c = await fresh();
        expect(await c.insert({ _id: 'a', name: 'stored' })).toBe(true);
        expect(await c.insertMany([{ _id: 'a', name: 'new' }, { _id: 'b', name: 'one' }, { _id: 'b', name: 'two' }, { _id: 'c' }])).toEqual(['b', 'c']);
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'stored' });
        expect(await c.get('b')).toEqual({ _id: 'b', name: 'one' });
        // Repeating the whole batch (a retry) inserts nothing and changes nothing.
        expect(await c.insertMany([{ _id: 'a', name: 'new' }, { _id: 'b', name: 'two' }, { _id: 'c' }])).toEqual([]);
        expect(await c.get('b')).toEqual({ _id: 'b', name: 'one' });
        expect(await c.count({})).toBe(3);
      });

      it('throws DuplicateKeyError on another unique index clash after inserting the rest', async () => {
        const c = await fresh([{ fields: ['name'], unique: true }]);
        expect(await c.insert({ _id: 'a', name: 'alice' })).toBe(true);
        await expect(c.insertMany([{ _id: 'b', name: 'bob' }, { _id: 'c', name: 'alice' }, { _id: 'd', name: 'dave' }])).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await c.get('c')).toBeNull();
        expect(sortedIds(await c.find({}))).toEqual(['a', 'b', 'd']);
        // Only _id clashes (with the unique field equal too): the idempotent case, no error.
        expect(await c.insertMany([{ _id: 'a', name: 'alice' }, { _id: 'b', name: 'bob' }])).toEqual([]);
      });

      it('stores nothing when a document has a field name the port forbids', async () => {
        const c = await fresh();
        await expect(c.insertMany([{ _id: 'ok', n: 1 }, { _id: 'bad', ['a.b']: 1 } as Item])).rejects.toThrow();
        expect(await c.count({})).toBe(0);
      });

      it('lets concurrent batches over the same ids insert each document once', async () => {
        const c = await fresh();
        const batch = (tag: string) => Array.from({ length: 30 }, (_, i) => ({ _id: `k${i}`, name: tag }));
        const inserted = await Promise.all([c.insertMany(batch('p')), c.insertMany(batch('q')), c.insertMany(batch('r'))]);
        // Each _id is reported by exactly the batch whose document was stored.
        expect(inserted.flat().sort()).toEqual(batch('p').map((d) => d._id).sort());
        for (const [i, tag] of ['p', 'q', 'r'].entries()) for (const id of inserted[i]) expect((await c.get(id))?.name).toBe(tag);
        expect(await c.count({})).toBe(30);
      });
    });

    describe('put, get, getMany', () => {
      it('creates, then replaces the whole document', async () => {
        const c = await fresh();
        await c.put({ _id: 'a', name: 'one', n: 1, opt: 'x' });
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'one', n: 1, opt: 'x' });
        await c.put({ _id: 'a', name: 'two' });
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'two' });
        expect(await c.count({})).toBe(1);
      });

      it('throws DuplicateKeyError when a put clashes with another unique index', async () => {
        const c = await fresh([{ fields: ['name'], unique: true }]);
        await c.put({ _id: 'a', name: 'alice' });
        await c.put({ _id: 'b', name: 'bob' });
        await expect(c.put({ _id: 'b', name: 'alice' })).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await c.get('b')).toEqual({ _id: 'b', name: 'bob' });
        // Replacing a document with its own unique value is not a clash.
        await c.put({ _id: 'a', name: 'alice', n: 5 });
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'alice', n: 5 });
      });

      it('returns null for a missing id', async () => {
        const c = await fresh();
        expect(await c.get('nope')).toBeNull();
      });

      it('getMany returns the existing documents in the order asked, skipping missing and repeated ids', async () => {
        const c = await fresh();
        for (const id of ['a', 'b', 'c', 'd']) await c.put({ _id: id, name: id.toUpperCase() });
        expect(await c.getMany([])).toEqual([]);
        const got = await c.getMany(['c', 'missing', 'a', 'c', 'd']);
        expect(got).toEqual([
          { _id: 'c', name: 'C' },
          { _id: 'a', name: 'A' },
          { _id: 'd', name: 'D' },
        ]);
      });

      it('getMany handles a large id list', async () => {
        const c = await fresh();
        const all = Array.from({ length: 300 }, (_, i) => `id${i}`);
        for (const id of all.filter((_, i) => i % 3 === 0)) await c.put({ _id: id, n: 1 });
        expect(ids(await c.getMany(all))).toEqual(all.filter((_, i) => i % 3 === 0));
      });

      it('keeps string arrays, booleans, null and numbers up to 2^53 exact', async () => {
        const c = await fresh();
        const doc: Doc = {
          _id: 'x',
          tags: ['a', 'b.c', '$d', ''],
          empty: [],
          yes: true,
          no: false,
          nil: null,
          big: Number.MAX_SAFE_INTEGER,
          bigger: 2 ** 53,
          neg: -(2 ** 40),
          zero: 0,
          frac: 0.125,
        };
        await c.put(doc as Item);
        expect(await c.get('x')).toEqual(doc);
        expect(await c.findOne({ big: Number.MAX_SAFE_INTEGER })).toEqual(doc);
        expect(await c.findOne({ bigger: { $gt: Number.MAX_SAFE_INTEGER - 1 } })).toEqual(doc);
        expect(await c.findOne({ neg: { $lt: -(2 ** 39) } })).toEqual(doc);
      });

      it('keeps strings with dots, unicode, $ and JSON byte-exact, and matches them in filters', async () => {
        const c = await fresh([{ fields: ['name'], unique: true }]);
        const strings = [
          'm.relates_to',
          '$set',
          '{"m.relates_to":{"rel_type":"m.thread","$x":[1,[2,{"a.b":null}]]}}',
          'emoji 🐈‍⬛ and ﬃ ligature, é vs é, 日本語, عربى',
          'quotes \' " and backslash \\ and newline \n tab \t',
          '\u0001 control and \u2028 line separator',
          ' leading and trailing space ',
          'x'.repeat(70_000),
        ];
        for (const [i, s] of strings.entries()) await c.put({ _id: `s${i}`, name: s, opt: s });
        for (const [i, s] of strings.entries()) {
          const got = await c.get(`s${i}`);
          expect(got?.name).toBe(s);
          expect(got?.opt).toBe(s);
          expect(ids(await c.find({ name: s }))).toEqual([`s${i}`]);
        }
        // _id itself may carry such characters.
        const weirdId = '$a.b:ü/🐈 "q"';
        expect(await c.insert({ _id: weirdId, name: 'weird' })).toBe(true);
        expect(await c.get(weirdId)).toEqual({ _id: weirdId, name: 'weird' });
        expect(await c.insert({ _id: weirdId, name: 'again' })).toBe(false);
      });
    });

    describe('filters', () => {
      const data: Item[] = [
        { _id: 'a', name: 'apple', n: 1, flag: true, opt: 'x', tags: ['red'] },
        { _id: 'b', name: 'banana', n: 2, flag: false, opt: null, tags: [] },
        { _id: 'c', name: 'cherry', n: 3, flag: true },
        { _id: 'd', name: 'date', n: 10, flag: false, opt: 'y' },
        { _id: 'e', name: 'elder', n: -5, flag: true, opt: 'x' },
        { _id: 'f', name: 'Fig', n: 2.5 },
      ];
      let c: Awaited<ReturnType<typeof fresh>>;
      beforeAll(async () => {
        c = await fresh([{ fields: ['name'] }, { fields: ['n'] }, { fields: ['flag', 'n'] }]);
        for (const d of data) expect(await c.insert(d)).toBe(true);
      });

      it('matches an empty filter to everything', async () => {
        expect(sortedIds(await c.find({}))).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
      });

      it('equality on strings, numbers, booleans and _id', async () => {
        expect(ids(await c.find({ name: 'banana' }))).toEqual(['b']);
        expect(ids(await c.find({ name: 'fig' }))).toEqual([]);
        expect(ids(await c.find({ n: 10 }))).toEqual(['d']);
        expect(ids(await c.find({ n: 2.5 }))).toEqual(['f']);
        expect(sortedIds(await c.find({ flag: true }))).toEqual(['a', 'c', 'e']);
        expect(sortedIds(await c.find({ flag: false }))).toEqual(['b', 'd']);
        expect(ids(await c.find({ _id: 'e' }))).toEqual(['e']);
        expect(ids(await c.find({ flag: { $eq: false }, n: { $eq: 2 } }))).toEqual(['b']);
      });

      it('equality with null matches stored null and missing fields', async () => {
        expect(sortedIds(await c.find({ opt: null }))).toEqual(['b', 'c', 'f']);
        expect(sortedIds(await c.find({ opt: { $eq: null } }))).toEqual(['b', 'c', 'f']);
        expect(sortedIds(await c.find({ flag: null }))).toEqual(['f']);
      });

      it('$ne matches documents where the field differs or is missing', async () => {
        expect(sortedIds(await c.find({ opt: { $ne: 'x' } }))).toEqual(['b', 'c', 'd', 'f']);
        expect(sortedIds(await c.find({ opt: { $ne: null } }))).toEqual(['a', 'd', 'e']);
        expect(sortedIds(await c.find({ flag: { $ne: true } }))).toEqual(['b', 'd', 'f']);
        expect(sortedIds(await c.find({ _id: { $ne: 'a' } }))).toEqual(['b', 'c', 'd', 'e', 'f']);
      });

      it('$gt, $gte, $lt, $lte on numbers', async () => {
        expect(sortedIds(await c.find({ n: { $gt: 2 } }))).toEqual(['c', 'd', 'f']);
        expect(sortedIds(await c.find({ n: { $gte: 2 } }))).toEqual(['b', 'c', 'd', 'f']);
        expect(sortedIds(await c.find({ n: { $lt: 2 } }))).toEqual(['a', 'e']);
        expect(sortedIds(await c.find({ n: { $lte: 2 } }))).toEqual(['a', 'b', 'e']);
        expect(sortedIds(await c.find({ n: { $gt: 1, $lt: 3 } }))).toEqual(['b', 'f']);
        expect(sortedIds(await c.find({ n: { $gte: -5, $lte: -5 } }))).toEqual(['e']);
      });

      it('$gt, $gte, $lt, $lte on strings compare by code point', async () => {
        expect(sortedIds(await c.find({ name: { $gt: 'cherry' } }))).toEqual(['d', 'e']);
        expect(sortedIds(await c.find({ name: { $gte: 'cherry' } }))).toEqual(['c', 'd', 'e']);
        // 'F' (0x46) sorts before every lower-case letter.
        expect(sortedIds(await c.find({ name: { $lt: 'b' } }))).toEqual(['a', 'f']);
        expect(sortedIds(await c.find({ name: { $lte: 'banana' } }))).toEqual(['a', 'b', 'f']);
        expect(sortedIds(await c.find({ _id: { $gt: 'b', $lte: 'd' } }))).toEqual(['c', 'd']);
      });

      it('$in on strings, numbers, booleans and _id; with null it also matches missing; empty matches nothing', async () => {
        expect(sortedIds(await c.find({ name: { $in: ['apple', 'date', 'nope'] } }))).toEqual(['a', 'd']);
        expect(sortedIds(await c.find({ n: { $in: [2, 3, 99] } }))).toEqual(['b', 'c']);
        expect(sortedIds(await c.find({ flag: { $in: [false] } }))).toEqual(['b', 'd']);
        expect(sortedIds(await c.find({ _id: { $in: ['f', 'a'] } }))).toEqual(['a', 'f']);
        expect(sortedIds(await c.find({ opt: { $in: ['y', null] } }))).toEqual(['b', 'c', 'd', 'f']);
        expect(await c.find({ name: { $in: [] } })).toEqual([]);
      });

      it('$exists tells a stored null from a missing field', async () => {
        expect(sortedIds(await c.find({ opt: { $exists: true } }))).toEqual(['a', 'b', 'd', 'e']);
        expect(sortedIds(await c.find({ opt: { $exists: false } }))).toEqual(['c', 'f']);
        expect(sortedIds(await c.find({ tags: { $exists: true } }))).toEqual(['a', 'b']);
      });

      it('ANDs conditions on several fields', async () => {
        expect(sortedIds(await c.find({ flag: true, n: { $gt: 0 } }))).toEqual(['a', 'c']);
        expect(sortedIds(await c.find({ flag: true, opt: 'x', n: { $lt: 0 } }))).toEqual(['e']);
        expect(await c.find({ flag: true, name: 'banana' })).toEqual([]);
      });

      it('findOne returns a matching document or null', async () => {
        expect(await c.findOne({ name: 'cherry' })).toEqual(data[2]);
        expect(await c.findOne({ name: 'nope' })).toBeNull();
      });

      it('count counts matches', async () => {
        expect(await c.count({})).toBe(6);
        expect(await c.count({ flag: true })).toBe(3);
        expect(await c.count({ n: { $gt: 100 } })).toBe(0);
      });

      it('sorts ascending and descending by numbers and by strings', async () => {
        expect(ids(await c.find({}, { sort: { n: 1 } }))).toEqual(['e', 'a', 'b', 'f', 'c', 'd']);
        expect(ids(await c.find({}, { sort: { n: -1 } }))).toEqual(['d', 'c', 'f', 'b', 'a', 'e']);
        expect(ids(await c.find({}, { sort: { name: 1 } }))).toEqual(['f', 'a', 'b', 'c', 'd', 'e']);
        expect(ids(await c.find({}, { sort: { name: -1 } }))).toEqual(['e', 'd', 'c', 'b', 'a', 'f']);
        expect(ids(await c.find({}, { sort: { _id: -1 } }))).toEqual(['f', 'e', 'd', 'c', 'b', 'a']);
      });

      it('sorts by several keys in order', async () => {
        expect(ids(await c.find({ flag: { $exists: true } }, { sort: { flag: 1, n: -1 } }))).toEqual(['d', 'b', 'c', 'a', 'e']);
      });

      it('applies limit and skip after sorting and filtering', async () => {
        expect(ids(await c.find({}, { sort: { n: 1 }, limit: 2 }))).toEqual(['e', 'a']);
        expect(ids(await c.find({}, { sort: { n: 1 }, skip: 4 }))).toEqual(['c', 'd']);
        expect(ids(await c.find({}, { sort: { n: 1 }, skip: 1, limit: 3 }))).toEqual(['a', 'b', 'f']);
        expect(ids(await c.find({ flag: true }, { sort: { n: -1 }, limit: 2 }))).toEqual(['c', 'a']);
        expect(await c.find({}, { sort: { n: 1 }, skip: 10 })).toEqual([]);
        expect(await c.find({}, { limit: 4 })).toHaveLength(4);
      });
    });

    describe('update', () => {
      it('sets fields on the document and leaves others alone', async () => {
        const c = await fresh();
        await c.put({ _id: 'a', name: 'x', n: 1, tags: ['t'] });
        expect(await c.update('a', { n: 2, opt: 'new', tags: ['u', 'v'] })).toBe(true);
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'x', n: 2, opt: 'new', tags: ['u', 'v'] });
        expect(await c.update('missing', { n: 2 })).toBe(false);
        expect(await c.get('missing')).toBeNull();
      });

      it('is conditional on where: no change when it does not match', async () => {
        const c = await fresh();
        await c.put({ _id: 'a', n: 1, name: 'x' });
        expect(await c.update('a', { n: 5 }, { n: 2 })).toBe(false);
        expect(await c.update('a', { n: 5 }, { n: 1, name: 'y' })).toBe(false);
        expect(await c.get('a')).toEqual({ _id: 'a', n: 1, name: 'x' });
        expect(await c.update('a', { n: 5 }, { n: { $lt: 2 }, name: 'x' })).toBe(true);
        expect(await c.get('a')).toEqual({ _id: 'a', n: 5, name: 'x' });
        expect(await c.update('a', { opt: 'set' }, { opt: { $exists: false } })).toBe(true);
        expect(await c.update('a', { opt: 'again' }, { opt: { $exists: false } })).toBe(false);
        expect((await c.get('a'))?.opt).toBe('set');
      });

      it('compare-and-set: of 20 concurrent attempts exactly one wins', async () => {
        const c = await fresh();
        await c.put({ _id: 'cas', v: 7 });
        const results = await Promise.all(Array.from({ length: 20 }, () => c.update('cas', { v: 8 }, { v: 7 })));
        expect(results.filter((r) => r)).toHaveLength(1);
        expect(await c.get('cas')).toEqual({ _id: 'cas', v: 8 });
      });

      it('compare-and-set chains: concurrent increments never lose an update', async () => {
        const c = await fresh();
        await c.put({ _id: 'ctr', v: 0 });
        const bump = async (): Promise<number> => {
          for (let attempt = 0; attempt < 200; attempt++) {
            const cur = (await c.get('ctr'))?.v ?? 0;
            if (await c.update('ctr', { v: cur + 1 }, { v: cur })) return attempt;
          }
          throw new Error('gave up');
        };
        await Promise.all(Array.from({ length: 10 }, bump));
        expect((await c.get('ctr'))?.v).toBe(10);
      });

      it('unsets fields, alone or with a set', async () => {
        const c = await fresh();
        await c.put({ _id: 'a', name: 'x', n: 1, opt: 'o', flag: true });
        expect(await c.update('a', {}, undefined, ['opt'])).toBe(true);
        expect(await c.get('a')).toEqual({ _id: 'a', name: 'x', n: 1, flag: true });
        expect(await c.update('a', { n: 2 }, { name: 'x' }, ['flag', 'name'])).toBe(true);
        expect(await c.get('a')).toEqual({ _id: 'a', n: 2 });
        expect(await c.findOne({ name: { $exists: false } })).toEqual({ _id: 'a', n: 2 });
        // Unsetting a field that is not there still matches the document.
        expect(await c.update('a', {}, undefined, ['opt'])).toBe(true);
        expect(await c.update('zzz', {}, undefined, ['opt'])).toBe(false);
      });

      it('can set a field to null, which is not the same as unsetting it', async () => {
        const c = await fresh();
        await c.put({ _id: 'a', opt: 'o' });
        expect(await c.update('a', { opt: null })).toBe(true);
        expect(await c.get('a')).toEqual({ _id: 'a', opt: null });
        expect(await c.count({ opt: { $exists: true } })).toBe(1);
      });

      it('throws DuplicateKeyError when an update clashes with a unique index', async () => {
        const c = await fresh([{ fields: ['name'], unique: true }]);
        await c.put({ _id: 'a', name: 'alice' });
        await c.put({ _id: 'b', name: 'bob' });
        await expect(c.update('b', { name: 'alice' })).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await c.get('b')).toEqual({ _id: 'b', name: 'bob' });
      });

      it('updateMany sets fields on every match and returns the match count', async () => {
        const c = await fresh([{ fields: ['name'] }]);
        for (let i = 0; i < 6; i++) await c.put({ _id: `d${i}`, name: i % 2 ? 'odd' : 'even', n: i });
        expect(await c.updateMany({ name: 'odd' }, { flag: true })).toBe(3);
        expect(sortedIds(await c.find({ flag: true }))).toEqual(['d1', 'd3', 'd5']);
        expect(await c.count({ flag: { $exists: false } })).toBe(3);
        expect(await c.updateMany({ n: { $gte: 4 } }, { name: 'big', opt: 'z' })).toBe(2);
        expect(await c.get('d5')).toEqual({ _id: 'd5', name: 'big', n: 5, flag: true, opt: 'z' });
        expect(await c.updateMany({ name: 'none' }, { n: 0 })).toBe(0);
      });
    });

    describe('delete', () => {
      it('delete removes one document and reports whether it existed', async () => {
        const c = await fresh();
        await c.put({ _id: 'a', n: 1 });
        await c.put({ _id: 'b', n: 2 });
        expect(await c.delete('a')).toBe(true);
        expect(await c.delete('a')).toBe(false);
        expect(await c.get('a')).toBeNull();
        expect(ids(await c.find({}))).toEqual(['b']);
        // A deleted _id can be inserted again.
        expect(await c.insert({ _id: 'a', n: 3 })).toBe(true);
      });

      it('deleteMany removes the matches and returns how many', async () => {
        const c = await fresh();
        for (let i = 0; i < 10; i++) await c.put({ _id: `d${i}`, n: i });
        expect(await c.deleteMany({ n: { $lt: 4 } })).toBe(4);
        expect(await c.deleteMany({ n: { $lt: 4 } })).toBe(0);
        expect(await c.count({})).toBe(6);
        expect(await c.deleteMany({})).toBe(6);
        expect(await c.count({})).toBe(0);
      });
    });

    describe('collections', () => {
      it('opening a collection again keeps its data and indexes', async () => {
        const spec = { name: `contract_reopen_${++counter}`, indexes: [{ fields: ['name'], unique: true }] };
        const first = await store.collection<Item>(spec);
        await first.put({ _id: 'a', name: 'alice' });
        const second = await store.collection<Item>(spec);
        expect(await second.get('a')).toEqual({ _id: 'a', name: 'alice' });
        await expect(second.insert({ _id: 'b', name: 'alice' })).rejects.toBeInstanceOf(DuplicateKeyError);
      });

      it('keeps collections apart', async () => {
        const one = await fresh();
        const two = await fresh();
        await one.put({ _id: 'same', n: 1 });
        expect(await two.get('same')).toBeNull();
        expect(await two.insert({ _id: 'same', n: 2 })).toBe(true);
        expect((await one.get('same'))?.n).toBe(1);
      });

      it('rejects field names that are not plain identifiers', async () => {
        const c = await fresh();
        await expect(c.find({ 'a.b': 1 })).rejects.toThrow(/invalid field name/);
        await expect(c.put({ _id: 'x', $bad: 1 } as Item)).rejects.toThrow(/invalid field name/);
      });
    });

    describe('sequences', () => {
      it('starts at 0, counts up by 1 or by the increment given', async () => {
        const name = `seq_${++counter}`;
        expect(await store.currentSequence(name)).toBe(0);
        expect(await store.nextSequence(name)).toBe(1);
        expect(await store.nextSequence(name)).toBe(2);
        expect(await store.nextSequence(name, 10)).toBe(12);
        expect(await store.currentSequence(name)).toBe(12);
        expect(await store.currentSequence(name)).toBe(12);
        expect(await store.nextSequence(`${name}_other`)).toBe(1);
        expect(await store.currentSequence(name)).toBe(12);
      });

      it('gives 200 concurrent callers unique, gap-free values', async () => {
        const name = `seq_${++counter}`;
        const values = await Promise.all(Array.from({ length: 200 }, () => store.nextSequence(name)));
        expect(new Set(values).size).toBe(200);
        expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
        expect(await store.currentSequence(name)).toBe(200);
      });

      it('stays unique across two stores on the same database', async () => {
        const name = `seq_${++counter}`;
        const other = await open();
        try {
          const values = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? store : other).nextSequence(name)));
          expect(new Set(values).size).toBe(100);
          expect(Math.max(...values)).toBe(100);
          expect(await other.currentSequence(name)).toBe(100);
        } finally {
          await other.close();
        }
      });
    });

    describe('persistence', () => {
      it('a store opened again sees what an earlier one wrote', async () => {
        const spec = { name: `contract_persist_${++counter}`, indexes: [{ fields: ['n'] }] };
        const seq = `seq_${++counter}`;
        const first = await open();
        const c = await first.collection<Item>(spec);
        await c.put({ _id: 'kept', name: 'é.🐈', n: 42, tags: ['a'] });
        expect(await first.nextSequence(seq, 5)).toBe(5);
        await first.close();

        const second = await open();
        try {
          const again = await second.collection<Item>(spec);
          expect(await again.get('kept')).toEqual({ _id: 'kept', name: 'é.🐈', n: 42, tags: ['a'] });
          expect(await again.findOne({ n: 42 })).toEqual({ _id: 'kept', name: 'é.🐈', n: 42, tags: ['a'] });
          expect(await second.nextSequence(seq)).toBe(6);
        } finally {
          await second.close();
        }
      });
    });
  });
}
