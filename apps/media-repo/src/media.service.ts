/**
 * The content repository's logic (client-server-api "Content repository";
 * server-server-api "Content Repository"): uploads, media IDs created ahead
 * of their upload, downloads that wait for a pending upload, thumbnails, and
 * remote media fetched over federation and cached.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { MediaConfig } from '@atrium/config';
import type { FederationClient } from '@atrium/federation-client';
import { Errors, MatrixError } from '@atrium/http';
import { mxcUri } from '@atrium/matrix';
import type { BlobStore, StagedBlob } from './storage/blob-store';
import { mediaKey, type MediaRecord, type MediaStore } from './storage/media-store';
import { sniffImageType, type ThumbnailRequest, type Thumbnailer } from './thumbnailer';
import { fetchRemoteMedia, type RemoteMediaClient } from './remote-media';

/** "The content repository SHOULD impose a maximum value for this parameter" (timeout_ms). */
export const MAX_TIMEOUT_MS = 60_000;
export const DEFAULT_TIMEOUT_MS = 20_000;

export function notYetUploaded(): MatrixError {
  return new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');
}

/** Content ready to serve. */
export interface ServableMedia {
  record: MediaRecord;
  /** Path of the bytes in the blob store. */
  path: string;
}

export type ServableThumbnail =
  | { kind: 'original'; media: ServableMedia }
  | { kind: 'bytes'; bytes: Buffer; contentType: string };

export interface FetchOptions {
  /** How long to wait for a pending upload (ms), already capped. */
  timeoutMs: number;
  /** false: remote media is not fetched (404 instead), the v3 `allow_remote` parameter. */
  allowRemote: boolean;
  /**
   * The unauthenticated endpoints' freeze: media stored at or after this time
   * (remote media: cached) is answered 404, and remote media is not fetched
   * for them (it would be "new"). Undefined: no freeze.
   */
  frozenFrom?: number;
}

function frozen(record: MediaRecord, options: FetchOptions): boolean {
  return options.frozenFrom !== undefined && record.created_ts >= options.frozenFrom;
}

export class MediaService {
  private readonly remoteFetches = new Map<string, Promise<ServableMedia>>();

  constructor(
    private readonly serverName: string,
    private readonly config: MediaConfig,
    private readonly store: MediaStore,
    private readonly blobs: BlobStore,
    private readonly thumbnailer: Thumbnailer,
    private readonly federation: (FederationClient & Partial<RemoteMediaClient>) | undefined,
  ) {}

  private newMediaId(): string {
    // 24 characters of the URL-safe base64 alphabet: only [A-Za-z0-9_-], as media IDs must be.
    return randomBytes(18).toString('base64url');
  }

  /** POST /_matrix/media/v3/upload: stores the bytes under a new media ID (`userId` null: fetched by the server itself). */
  async upload(userId: string | null, staged: StagedBlob, contentType: string | undefined, filename: string | undefined): Promise<{ content_uri: string }> {
    await this.blobs.commit(staged);
    for (;;) {
      const mediaId = this.newMediaId();
      const inserted = await this.store.insert({
        _id: mediaKey(this.serverName, mediaId),
        origin: this.serverName,
        media_id: mediaId,
        state: 'ready',
        uploader: userId,
        content_type: contentType ?? null,
        filename: filename ?? null,
        size: staged.size,
        sha256: staged.sha256,
        created_ts: Date.now(),
        unused_expires_at: null,
        remote: false,
      });
      if (inserted) return { content_uri: mxcUri(this.serverName, mediaId) };
    }
  }

  /**
   * POST /_matrix/media/v1/create. "the server should limit the number of
   * concurrent pending media uploads a given user can have … respond with an
   * HTTP 429 error with an errcode of M_LIMIT_EXCEEDED."
   */
  async create(userId: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    const now = Date.now();
    if ((await this.store.countPending(userId, now)) >= this.config.max_pending_uploads) {
      throw new MatrixError(429, 'M_LIMIT_EXCEEDED', 'Too many pending media uploads', { retry_after_ms: 60_000 });
    }
    const unusedExpiresAt = now + this.config.unused_expires_after_ms;
    for (;;) {
      const mediaId = this.newMediaId();
      const inserted = await this.store.insert({
        _id: mediaKey(this.serverName, mediaId),
        origin: this.serverName,
        media_id: mediaId,
        state: 'pending',
        uploader: userId,
        content_type: null,
        filename: null,
        size: null,
        sha256: null,
        created_ts: now,
        unused_expires_at: unusedExpiresAt,
        remote: false,
      });
      if (inserted) return { content_uri: mxcUri(this.serverName, mediaId), unused_expires_at: unusedExpiresAt };
    }
  }

  /** PUT /_matrix/media/v3/upload/{serverName}/{mediaId}, in the order of the spec's errors. */
  async uploadTo(userId: string, serverName: string, mediaId: string, staged: StagedBlob, contentType: string | undefined, filename: string | undefined): Promise<Record<string, never>> {
    const record = serverName === this.serverName ? await this.store.get(serverName, mediaId) : null;
    // 404: "The MXC ID was not created with POST /_matrix/media/v1/create" or "has expired".
    if (!record || record.remote || (record.state === 'pending' && (record.unused_expires_at ?? 0) <= Date.now())) {
      throw Errors.notFound('Unknown media ID');
    }
    // 403: "The request comes from a different user than the one that called POST /_matrix/media/v1/create."
    if (record.uploader !== userId) throw Errors.forbidden('This media ID was created by another user');
    if (record.state !== 'pending') throw cannotOverwrite();
    await this.blobs.commit(staged);
    const done = await this.store.completeUpload(serverName, mediaId, {
      content_type: contentType ?? null,
      filename: filename ?? null,
      size: staged.size,
      sha256: staged.sha256,
    });
    if (!done) throw cannotOverwrite();
    return {};
  }

  /**
   * Local or remote media, ready to serve. A pending local upload is waited
   * for up to `timeoutMs` (polling the store, which every replica shares),
   * then 504 M_NOT_YET_UPLOADED.
   */
  async get(serverName: string, mediaId: string, options: FetchOptions): Promise<ServableMedia> {
    if (serverName !== this.serverName) return this.getRemote(serverName, mediaId, options);
    const deadline = Date.now() + options.timeoutMs;
    let delay = 50;
    for (;;) {
      const record = await this.store.get(serverName, mediaId);
      if (!record || (record.state === 'pending' && (record.unused_expires_at ?? 0) <= Date.now())) throw Errors.notFound('Media not found');
      if (record.state === 'ready') {
        if (frozen(record, options)) throw Errors.notFound('Media not found');
        return this.servable(record);
      }
      // Pending media would be new when it arrives.
      if (options.frozenFrom !== undefined) throw Errors.notFound('Media not found');
      const left = deadline - Date.now();
      if (left <= 0) throw notYetUploaded();
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, 500);
    }
  }

  private async servable(record: MediaRecord): Promise<ServableMedia> {
    const path = record.sha256 ? await this.blobs.pathOf(record.sha256) : undefined;
    if (!path) throw Errors.notFound('Media not found');
    return { record, path };
  }

  open(media: ServableMedia): Readable {
    return this.blobs.open(media.record.sha256 as string);
  }

  /** Cached remote media, else fetched from its origin (server-server-api "Content Repository"). */
  private async getRemote(serverName: string, mediaId: string, options: FetchOptions): Promise<ServableMedia> {
    const cached = await this.store.get(serverName, mediaId);
    if (cached && cached.state === 'ready') {
      const path = cached.sha256 ? await this.blobs.pathOf(cached.sha256) : undefined;
      if (path && frozen(cached, options)) throw Errors.notFound('Media not found');
      if (path) return { record: cached, path };
    }
    if (!options.allowRemote) throw Errors.notFound('Remote media not fetched: allow_remote is false');
    // "For remote media, newly-uploaded is determined by the date the cache was populated."
    if (options.frozenFrom !== undefined) throw Errors.notFound('Media not found');
    if (!this.federation?.requestBytes) {
      throw new MatrixError(502, 'M_UNKNOWN', 'Fetching remote media is not available on this server');
    }
    // Clients of one room ask for the same new media at once: one fetch per process serves them all.
    const key = mediaKey(serverName, mediaId);
    const running = this.remoteFetches.get(key);
    if (running) return running;
    const fetching = this.fetchRemote(serverName, mediaId, options).finally(() => this.remoteFetches.delete(key));
    this.remoteFetches.set(key, fetching);
    return fetching;
  }

  private async fetchRemote(serverName: string, mediaId: string, options: FetchOptions): Promise<ServableMedia> {
    const fetched = await fetchRemoteMedia(this.federation as RemoteMediaClient, this.blobs, serverName, mediaId, {
      timeoutMs: options.timeoutMs,
      maxBytes: this.config.max_upload_size,
    });
    const record: MediaRecord = {
      _id: mediaKey(serverName, mediaId),
      origin: serverName,
      media_id: mediaId,
      state: 'ready',
      uploader: null,
      content_type: fetched.contentType ?? null,
      filename: fetched.filename ?? null,
      size: fetched.staged.size,
      sha256: fetched.staged.sha256,
      created_ts: Date.now(),
      unused_expires_at: null,
      remote: true,
    };
    await this.blobs.commit(fetched.staged);
    await this.store.putRemote(record);
    return this.servable(record);
  }

  /** A thumbnail of local or remote media (made from the cached original; 413 local / 502 remote when too large). */
  async thumbnail(serverName: string, mediaId: string, request: ThumbnailRequest, options: FetchOptions): Promise<ServableThumbnail> {
    const media = await this.get(serverName, mediaId, options);
    const sha256 = media.record.sha256 as string;
    const cacheName = this.thumbnailer.cacheName(request);
    const cached = await this.blobs.readDerived(sha256, cacheName);
    if (cached) return { kind: 'bytes', bytes: cached, contentType: sniffImageType(cached) };
    const outcome = await this.thumbnailer.make(media.path, media.record.content_type ?? 'application/octet-stream', request);
    switch (outcome.kind) {
      case 'original':
        return { kind: 'original', media };
      case 'made':
        await this.blobs.writeDerived(sha256, outcome.cacheName, outcome.bytes);
        return { kind: 'bytes', bytes: outcome.bytes, contentType: outcome.contentType };
      case 'too-large':
        // "Homeservers should not attempt to generate thumbnails for images that are too large, returning
        // a HTTP 413 error with the M_TOO_LARGE code" (local); 502 M_TOO_LARGE for remote content.
        throw new MatrixError(media.record.remote ? 502 : 413, 'M_TOO_LARGE', 'Content is too large to thumbnail');
      case 'unsupported':
        throw new MatrixError(400, 'M_UNKNOWN', 'Cannot generate thumbnails for the requested content');
    }
  }

  /** Stores bytes fetched by the server itself (URL preview images) as local media with no uploader. */
  async storeFetched(bytes: Buffer, contentType: string | undefined): Promise<{ content_uri: string; size: number }> {
    const staged = await this.blobs.stageBuffer(bytes);
    const result = await this.upload(null, staged, contentType, undefined);
    return { content_uri: result.content_uri, size: staged.size };
  }
}

function cannotOverwrite(): MatrixError {
  return new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded');
}

