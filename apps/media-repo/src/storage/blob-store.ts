/**
 * Where media bytes live. One port, one adapter today: files in a folder.
 *
 * Why files and not the DocumentStore: the storage port holds top-level
 * scalars only (no binary fields), so chunks would be base64 strings, a third
 * larger, and every download would be a run of database reads through
 * FerretDB/MongoDB, whose oplog and backups would carry every upload. A
 * folder streams, and the cluster deployment already mounts one shared
 * ReadWriteMany volume for media-repo (deploy/k8s/media-pvc.yaml), which
 * every replica sees. An object store (S3) would be a second adapter of this
 * port.
 *
 * Layout under the root: `blobs/ab/cd/<sha256>` (content-addressed: the same
 * bytes uploaded twice are stored once, and two replicas writing the same
 * blob write the same file), `thumbnails/<sha256>/<name>` (derived, cached),
 * `tmp/` (uploads in progress). Every file appears by rename(2) of a
 * complete temporary file in the same filesystem, so a reader never sees a
 * half-written blob.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/** Bytes received and hashed but not yet part of the store. */
export interface StagedBlob {
  path: string;
  sha256: string;
  size: number;
}

/** The body was larger than the limit given to `stage`. */
export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`content larger than ${limit} bytes`);
    this.name = 'BlobTooLargeError';
  }
}

export interface BlobStore {
  /** Reads `source` to a temporary file, hashing it; rejects with BlobTooLargeError past `maxBytes` (the file is removed). */
  stage(source: Readable, maxBytes: number): Promise<StagedBlob>;
  /** Stages bytes already in memory. */
  stageBuffer(bytes: Buffer): Promise<StagedBlob>;
  /** Moves a staged blob into the store (idempotent: the same content may already be there). */
  commit(staged: StagedBlob): Promise<void>;
  /** Drops a staged blob that will not be committed (no error if it is gone). */
  discard(staged: StagedBlob): Promise<void>;
  /** A stored blob's file path, or undefined when it is missing. */
  pathOf(sha256: string): Promise<string | undefined>;
  open(sha256: string): Readable;
  /** Removes staged files older than `olderThanMs` (left by a crash); answers how many. */
  sweepStaged(olderThanMs: number): Promise<number>;
  /** A cached derived file (thumbnail) of a blob, or undefined. */
  readDerived(sha256: string, name: string): Promise<Buffer | undefined>;
  writeDerived(sha256: string, name: string, bytes: Buffer): Promise<void>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const DERIVED_NAME = /^[A-Za-z0-9._-]+$/;

export class FileBlobStore implements BlobStore {
  constructor(private readonly root: string) {}

  private blobPath(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new TypeError(`not a sha256: ${sha256}`);
    return join(this.root, 'blobs', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  private derivedPath(sha256: string, name: string): string {
    if (!SHA256_HEX.test(sha256) || !DERIVED_NAME.test(name)) throw new TypeError(`bad derived name ${sha256}/${name}`);
    return join(this.root, 'thumbnails', sha256, name);
  }

  private async tempPath(): Promise<string> {
    const dir = join(this.root, 'tmp');
    await mkdir(dir, { recursive: true });
    return join(dir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Removes staged files older than `olderThanMs`: uploads cut off by a
   * crash or a restart. A live upload's file is younger (uploads are bounded
   * in size and time), so replicas sharing the folder can all sweep it.
   */
  async sweepStaged(olderThanMs: number): Promise<number> {
    const dir = join(this.root, 'tmp');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return 0;
    }
    let removed = 0;
    const cutoff = Date.now() - olderThanMs;
    for (const name of names) {
      const path = join(dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info && info.mtimeMs < cutoff && (await unlink(path).then(() => true, () => false))) removed++;
    }
    return removed;
  }

  async stage(source: Readable, maxBytes: number): Promise<StagedBlob> {
    const path = await this.tempPath();
    const hash = createHash('sha256');
    const out = createWriteStream(path, { flags: 'wx' });
    let size = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: Error): void => {
          source.unpipe(out);
          source.resume();
          out.destroy();
          reject(err);
        };
        source.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            fail(new BlobTooLargeError(maxBytes));
            return;
          }
          hash.update(chunk);
        });
        source.on('error', fail);
        out.on('error', fail);
        out.on('finish', () => resolve());
        source.pipe(out);
      });
    } catch (err) {
      await unlink(path).catch(() => undefined);
      throw err;
    }
    return { path, sha256: hash.digest('hex'), size };
  }

  async stageBuffer(bytes: Buffer): Promise<StagedBlob> {
    const path = await this.tempPath();
    await writeFile(path, bytes, { flag: 'wx' });
    return { path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  }

  async commit(staged: StagedBlob): Promise<void> {
    const target = this.blobPath(staged.sha256);
    await mkdir(join(target, '..'), { recursive: true });
    // Replacing an existing blob with identical bytes is harmless.
    await rename(staged.path, target);
  }

  async discard(staged: StagedBlob): Promise<void> {
    await unlink(staged.path).catch(() => undefined);
  }

  async pathOf(sha256: string): Promise<string | undefined> {
    const path = this.blobPath(sha256);
    try {
      await stat(path);
      return path;
    } catch {
      return undefined;
    }
  }

  open(sha256: string): Readable {
    return createReadStream(this.blobPath(sha256));
  }

  async readDerived(sha256: string, name: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.derivedPath(sha256, name));
    } catch {
      return undefined;
    }
  }

  async writeDerived(sha256: string, name: string, bytes: Buffer): Promise<void> {
    const target = this.derivedPath(sha256, name);
    await mkdir(join(target, '..'), { recursive: true });
    const temp = await this.tempPath();
    await writeFile(temp, bytes, { flag: 'wx' });
    await rename(temp, target);
  }
}
