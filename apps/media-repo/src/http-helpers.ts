/** Request parsing and response writing shared by the media controllers. */
import type { FastifyReply } from 'fastify';
import { Errors } from '@atrium/http';
import { contentDisposition, isValidMediaId, isValidMediaOrigin, MEDIA_SECURITY_HEADERS, type ThumbnailMethod } from '@atrium/matrix';
import { DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, type FetchOptions, type MediaService, type ServableMedia, type ServableThumbnail } from './media.service';
import type { ThumbnailRequest } from './thumbnailer';

export type Query = Record<string, unknown>;

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/** "Security considerations": the server name must be a valid server name and the media ID only [A-Za-z0-9_-]. */
export function checkMediaPath(serverName: string, mediaId: string): void {
  if (!isValidMediaOrigin(serverName)) throw Errors.invalidParam('Invalid server name');
  if (!isValidMediaId(mediaId)) throw Errors.invalidParam('Invalid media ID');
}

function integer(query: Query, name: string): number | undefined {
  const raw = single(query, name);
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw Errors.invalidParam(`${name} must be a non-negative integer`);
  return Number(raw);
}

function boolean(query: Query, name: string): boolean | undefined {
  const raw = single(query, name);
  if (raw === undefined) return undefined;
  if (raw !== 'true' && raw !== 'false') throw Errors.invalidParam(`${name} must be true or false`);
  return raw === 'true';
}

/**
 * `timeout_ms` (default 20 s, capped) and, on the deprecated v3 endpoints,
 * `allow_remote` (default true) and the freeze (`media.unauthenticated_freeze_ts`).
 */
export function fetchOptions(query: Query, legacy: false): FetchOptions;
export function fetchOptions(query: Query, legacy: true, freezeTs: number): FetchOptions;
export function fetchOptions(query: Query, legacy: boolean, freezeTs = 0): FetchOptions {
  const timeoutMs = Math.min(integer(query, 'timeout_ms') ?? DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS);
  const allowRemote = legacy ? (boolean(query, 'allow_remote') ?? true) : true;
  return { timeoutMs, allowRemote, frozenFrom: legacy && freezeTs > 0 ? freezeTs : undefined };
}

/** width and height (required, positive), method (crop | scale, default scale), animated. */
export function thumbnailRequest(query: Query): ThumbnailRequest {
  const width = integer(query, 'width');
  const height = integer(query, 'height');
  if (width === undefined) throw Errors.missingParam('width');
  if (height === undefined) throw Errors.missingParam('height');
  if (width < 1 || height < 1 || width > 10_000 || height > 10_000) throw Errors.invalidParam('width and height must be between 1 and 10000');
  const method = single(query, 'method') ?? 'scale';
  if (method !== 'crop' && method !== 'scale') throw Errors.invalidParam('method must be crop or scale');
  return { width, height, method: method as ThumbnailMethod, animated: boolean(query, 'animated') ?? false };
}

export function uploadFilename(query: Query): string | undefined {
  const name = single(query, 'filename');
  return name === undefined || name === '' ? undefined : name;
}

/**
 * Sends stored media: its Content-Type (application/octet-stream when none
 * was given, as the spec's downloadContentType allows), Content-Disposition
 * (inline only for the safe types, with `fileName` overriding the stored
 * name), the security headers.
 */
export function sendMedia(reply: FastifyReply, service: MediaService, media: ServableMedia, fileName?: string): FastifyReply {
  const type = media.record.content_type ?? 'application/octet-stream';
  return reply
    .status(200)
    .headers({
      'content-type': type,
      'content-length': String(media.record.size ?? 0),
      'content-disposition': contentDisposition(type, fileName ?? media.record.filename ?? undefined),
      ...MEDIA_SECURITY_HEADERS,
    })
    .send(service.open(media));
}

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' };

/** Thumbnails: "Content-Disposition … MUST be inline, and SHOULD contain a file name (e.g. thumbnail.png)". */
export function sendThumbnail(reply: FastifyReply, service: MediaService, thumbnail: ServableThumbnail): FastifyReply {
  const type = thumbnail.kind === 'original' ? (thumbnail.media.record.content_type ?? 'application/octet-stream') : thumbnail.contentType;
  const ext = EXTENSIONS[type.split(';')[0].trim().toLowerCase()] ?? 'bin';
  reply.status(200).headers({ 'content-type': type, 'content-disposition': `inline; filename="thumbnail.${ext}"`, ...MEDIA_SECURITY_HEADERS });
  if (thumbnail.kind === 'original') return reply.header('content-length', String(thumbnail.media.record.size ?? 0)).send(service.open(thumbnail.media));
  return reply.header('content-length', String(thumbnail.bytes.length)).send(thumbnail.bytes);
}
