import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobTooLargeError, FileBlobStore } from './blob-store';

describe('FileBlobStore', () => {
  let dir: string;
  let store: FileBlobStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-blobs-'));
    store = new FileBlobStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stages a stream with its hash and size, and commits it content-addressed', async () => {
    const bytes = Buffer.from('hello media');
    const staged = await store.stage(Readable.from([bytes.subarray(0, 4), bytes.subarray(4)]), 100);
    expect(staged.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(staged.size).toBe(bytes.length);
    await store.commit(staged);
    const path = await store.pathOf(staged.sha256);
    expect(path).toBe(join(dir, 'blobs', staged.sha256.slice(0, 2), staged.sha256.slice(2, 4), staged.sha256));
    expect(readFileSync(path!).equals(bytes)).toBe(true);
    // The same bytes again: one blob, no error.
    await store.commit(await store.stageBuffer(bytes));
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('stops past the limit and leaves no file behind', async () => {
    const source = Readable.from([Buffer.alloc(60), Buffer.alloc(60)]);
    await expect(store.stage(source, 100)).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('sweeps staged files older than asked', async () => {
    const old = await store.stageBuffer(Buffer.from('left by a crash'));
    utimesSync(old.path, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    const fresh = await store.stageBuffer(Buffer.from('being uploaded'));
    expect(await store.sweepStaged(60_000)).toBe(1);
    expect(existsSync(old.path)).toBe(false);
    expect(existsSync(fresh.path)).toBe(true);
  });

  it('keeps derived files per blob and refuses names that could leave the folder', async () => {
    const sha = createHash('sha256').update('x').digest('hex');
    expect(await store.readDerived(sha, '32x32-crop')).toBeUndefined();
    await store.writeDerived(sha, '32x32-crop', Buffer.from('thumb'));
    expect((await store.readDerived(sha, '32x32-crop'))?.toString()).toBe('thumb');
    await expect(store.writeDerived(sha, '../../escape', Buffer.from('x'))).rejects.toThrow(TypeError);
    expect(() => store.open('../../etc/passwd')).toThrow(TypeError);
    expect(await store.pathOf(sha)).toBeUndefined();
    expect(existsSync(join(dir, 'escape'))).toBe(false);
  });
});
