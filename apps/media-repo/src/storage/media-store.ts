/**
 * Metadata of every piece of media this server knows: local uploads, media
 * IDs created ahead of their upload (POST /_matrix/media/v1/create) and the
 * cached copies of remote media. The bytes are in the BlobStore under
 * `sha256`; several records may share one blob.
 */
import type { Collection, Doc, DocumentStore } from '@atrium/storage';

export interface MediaRecord extends Doc {
  /** `<origin>/<media ID>`: neither part can hold a `/` (client-server-api "Security considerations"). */
  _id: string;
  origin: string;
  media_id: string;
  /** `pending`: created by /create and waiting for its upload; `ready`: the bytes are stored. */
  state: 'pending' | 'ready';
  /** The local user who created or uploaded it; null for remote media. */
  uploader: string | null;
  /** As the uploader (or the remote server) gave it; null when none was given. */
  content_type: string | null;
  filename: string | null;
  size: number | null;
  sha256: string | null;
  created_ts: number;
  /** Pending media only: when the media ID stops accepting its upload. */
  unused_expires_at: number | null;
  remote: boolean;
}

export function mediaKey(origin: string, mediaId: string): string {
  return `${origin}/${mediaId}`;
}

export class MediaStore {
  private constructor(private readonly media: Collection<MediaRecord>) {}

  static async open(store: DocumentStore): Promise<MediaStore> {
    const media = await store.collection<MediaRecord>({
      name: 'media',
      indexes: [{ fields: ['uploader', 'state'] }, { fields: ['sha256'] }],
    });
    return new MediaStore(media);
  }

  get(origin: string, mediaId: string): Promise<MediaRecord | null> {
    return this.media.get(mediaKey(origin, mediaId));
  }

  /** Inserts a new record; false when the key is taken (media IDs are random, so a clash means a retry). */
  insert(record: MediaRecord): Promise<boolean> {
    return this.media.insert(record);
  }

  /** Writes a cached remote record (a refetch replaces it with the same content). */
  putRemote(record: MediaRecord): Promise<void> {
    return this.media.put(record);
  }

  /** Pending media IDs of `userId` not yet expired at `now`. */
  countPending(userId: string, now: number): Promise<number> {
    return this.media.count({ uploader: userId, state: 'pending', unused_expires_at: { $gt: now } });
  }

  /**
   * Fills a pending record with its upload, only if it is still pending
   * (compare-and-set: of two concurrent uploads to one media ID one wins, the
   * other gets M_CANNOT_OVERWRITE_MEDIA).
   */
  completeUpload(origin: string, mediaId: string, fields: Pick<MediaRecord, 'content_type' | 'filename' | 'size' | 'sha256'>): Promise<boolean> {
    return this.media.update(mediaKey(origin, mediaId), { ...fields, state: 'ready', unused_expires_at: null }, { state: 'pending' });
  }
}
