import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '@atrium/config';
import { MatrixError } from '@atrium/http';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { MediaService, type FetchOptions } from './media.service';
import { FileBlobStore } from './storage/blob-store';
import { MediaStore, type MediaRecord } from './storage/media-store';
import { Thumbnailer } from './thumbnailer';

const SERVER = 'media.test';

describe('MediaService (SQLite and files)', () => {
  let dir: string;
  let documents: DocumentStore;
  let store: MediaStore;
  let blobs: FileBlobStore;
  let service: MediaService;
  const config = { ...defaultConfig(SERVER).media, max_pending_uploads: 2, unused_expires_after_ms: 60_000 };
  const open: FetchOptions = { timeoutMs: 0, allowRemote: true };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-media-svc-'));
    documents = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    store = await MediaStore.open(documents);
    blobs = new FileBlobStore(join(dir, 'media'));
    service = new MediaService(SERVER, config, store, blobs, new Thumbnailer(config.thumbnail_sizes, config.max_thumbnail_pixels), undefined);
  });
  afterEach(async () => {
    await documents.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const idOf = (mxc: string): string => mxc.split('/').pop()!;
  const errorOf = (promise: Promise<unknown>): Promise<MatrixError> => promise.then(() => { throw new Error('expected an error'); }, (err: MatrixError) => err);

  it('freezes the unauthenticated downloads from the configured time on', async () => {
    const before = idOf((await service.upload('@a:media.test', await blobs.stageBuffer(Buffer.from('old')), 'text/plain', undefined)).content_uri);
    const freeze = Date.now() + 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
    const after = idOf((await service.upload('@a:media.test', await blobs.stageBuffer(Buffer.from('new')), 'text/plain', undefined)).content_uri);
    const frozen: FetchOptions = { ...open, frozenFrom: freeze };
    expect((await service.get(SERVER, before, frozen)).record.size).toBe(3);
    expect(await errorOf(service.get(SERVER, after, frozen))).toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
    // The authenticated endpoints pass no freeze.
    expect((await service.get(SERVER, after, open)).record.media_id).toBe(after);
  });

  it('does not fetch remote media for frozen endpoints, and serves a copy cached before the freeze', async () => {
    expect(await errorOf(service.get('remote.test', 'abc', { ...open, frozenFrom: Date.now() }))).toMatchObject({ status: 404 });
    const staged = await blobs.stageBuffer(Buffer.from('remote'));
    await blobs.commit(staged);
    const record: MediaRecord = {
      _id: 'remote.test/abc', origin: 'remote.test', media_id: 'abc', state: 'ready', uploader: null, content_type: 'text/plain',
      filename: null, size: staged.size, sha256: staged.sha256, created_ts: Date.now() - 1000, unused_expires_at: null, remote: true,
    };
    await store.putRemote(record);
    expect((await service.get('remote.test', 'abc', { ...open, frozenFrom: Date.now() })).record.size).toBe(6);
    expect(await errorOf(service.get('remote.test', 'abc', { ...open, frozenFrom: Date.now() - 5000 }))).toMatchObject({ status: 404 });
  });

  it('answers 502 for remote media without a federation client', async () => {
    expect(await errorOf(service.get('remote.test', 'zzz', open))).toMatchObject({ status: 502 });
  });

  it('expires created media IDs and counts only live pending ones', async () => {
    const first = await service.create('@b:media.test');
    await service.create('@b:media.test');
    expect(await errorOf(service.create('@b:media.test'))).toMatchObject({ status: 429, errcode: 'M_LIMIT_EXCEEDED' });
    // Expire the first: its ID is unknown now, and a new one may be created.
    await documents.collection<MediaRecord>({ name: 'media' }).then((c) => c.update(`${SERVER}/${idOf(first.content_uri)}`, { unused_expires_at: Date.now() - 1 }));
    expect(await errorOf(service.get(SERVER, idOf(first.content_uri), open))).toMatchObject({ status: 404 });
    expect(await errorOf(service.uploadTo('@b:media.test', SERVER, idOf(first.content_uri), await blobs.stageBuffer(Buffer.from('x')), undefined, undefined))).toMatchObject({ status: 404 });
    await expect(service.create('@b:media.test')).resolves.toHaveProperty('content_uri');
  });
});
