/**
 * Fetching remote media over federation (server-server-api "Content
 * Repository": GET /_matrix/federation/v1/media/download/{mediaId}). The
 * answer is multipart/mixed with exactly two parts: JSON metadata, then the
 * bytes (or a Location to fetch them from, which this server does not follow:
 * an arbitrary URL is a request-forgery risk the federation transport's IP
 * blocklist would not cover).
 */
import { FederationHttpError, FederationUnreachableError, type FederationRequest } from '@atrium/federation-client';
import { MatrixError } from '@atrium/http';
import { sanitiseContentType } from '@atrium/matrix';
import type { BlobStore, StagedBlob } from './storage/blob-store';

/** A signed federation request whose answer is returned as bytes with its headers. */
export interface RemoteMediaClient {
  requestBytes(request: FederationRequest): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>;
}

export interface FetchedMedia {
  staged: StagedBlob;
  contentType?: string;
  filename?: string;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The `boundary` parameter of a multipart Content-Type (RFC 2046 section 5.1.1). */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/mixed\s*;/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match ? (match[1] ?? match[2]) : undefined;
}

export interface MultipartPart {
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits a multipart body into its parts (RFC 2046 section 5.1.1); undefined when it is malformed. */
export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] | undefined {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: MultipartPart[] = [];
  let start = body.indexOf(delimiter);
  if (start < 0) return undefined;
  for (;;) {
    let cursor = start + delimiter.length;
    if (body.subarray(cursor, cursor + 2).toString() === '--') return parts;
    // The rest of the delimiter line (transport padding) up to CRLF.
    const lineEnd = body.indexOf('\r\n', cursor);
    if (lineEnd < 0) return undefined;
    cursor = lineEnd + 2;
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), cursor);
    if (next < 0) return undefined;
    const part = body.subarray(cursor, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    const headerText = headerEnd < 0 ? (part.subarray(0, 2).toString() === '\r\n' ? '' : undefined) : part.subarray(0, headerEnd).toString('latin1');
    if (headerText === undefined) return undefined;
    const headers: Record<string, string> = {};
    for (const line of headerText.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers, body: headerEnd < 0 ? part.subarray(2) : part.subarray(headerEnd + 4) });
    start = next + 2;
  }
}

/** The filename of a Content-Disposition value (`filename*=utf-8''…` preferred over `filename="…"`). */
export function dispositionFilename(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const extended = /filename\*\s*=\s*utf-8''([^;\s]+)/i.exec(value);
  if (extended) {
    try {
      return decodeURIComponent(extended[1]);
    } catch {
      return undefined;
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(value);
  return plain ? (plain[1]?.replace(/\\(.)/g, '$1') ?? plain[2]) : undefined;
}

/**
 * Downloads remote media. Errors map to the client-server answers: the
 * origin's 404 is 404 M_NOT_FOUND; its 504 M_NOT_YET_UPLOADED passes
 * through; an answer larger than `maxBytes` is 502 M_TOO_LARGE ("Homeservers
 * should not proxy or thumbnail large files … from remote homeservers,
 * returning a HTTP 502 error with the M_TOO_LARGE code"); anything else 502.
 */
export async function fetchRemoteMedia(
  client: RemoteMediaClient,
  blobs: BlobStore,
  serverName: string,
  mediaId: string,
  options: { timeoutMs: number; maxBytes: number },
): Promise<FetchedMedia> {
  let answer: Awaited<ReturnType<RemoteMediaClient['requestBytes']>>;
  try {
    answer = await client.requestBytes({
      destination: serverName,
      method: 'GET',
      path: `/_matrix/federation/v1/media/download/${encodeURIComponent(mediaId)}`,
      query: { timeout_ms: options.timeoutMs },
      // The origin may itself wait for a pending upload that long.
      timeoutMs: options.timeoutMs + 10_000,
      // Room for the multipart framing around the bytes.
      maxResponseBytes: options.maxBytes + 64 * 1024,
    });
  } catch (err) {
    if (err instanceof FederationHttpError) {
      if (err.status === 404) throw new MatrixError(404, 'M_NOT_FOUND', 'Remote media not found');
      if (err.errcode === 'M_NOT_YET_UPLOADED') throw new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');
      if (err.errcode === 'M_TOO_LARGE') throw new MatrixError(502, 'M_TOO_LARGE', 'Remote content is too large');
      throw new MatrixError(502, 'M_UNKNOWN', `The remote server answered ${err.status}`);
    }
    if (err instanceof FederationUnreachableError) {
      if (err.reason === 'protocol') throw new MatrixError(502, 'M_TOO_LARGE', 'Remote content is too large or malformed');
      throw new MatrixError(502, 'M_UNKNOWN', 'The remote server could not be reached');
    }
    throw err;
  }
  const boundary = multipartBoundary(header(answer.headers, 'content-type'));
  const parts = boundary ? parseMultipart(answer.body, boundary) : undefined;
  if (!parts || parts.length !== 2) throw new MatrixError(502, 'M_UNKNOWN', 'The remote server sent a malformed media answer');
  const media = parts[1];
  if (media.headers.location !== undefined) throw new MatrixError(502, 'M_UNKNOWN', 'The remote server redirected the media elsewhere; not followed');
  if (media.body.length > options.maxBytes) throw new MatrixError(502, 'M_TOO_LARGE', 'Remote content is too large');
  const staged = await blobs.stageBuffer(media.body);
  return {
    staged,
    contentType: sanitiseContentType(media.headers['content-type']),
    filename: dispositionFilename(media.headers['content-disposition']),
  };
}
