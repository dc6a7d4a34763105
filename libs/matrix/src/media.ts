/**
 * Pure rules of the content repository (client-server-api "Content
 * repository"): media IDs and `mxc://` URIs, the Content-Disposition of
 * served media, the security headers, and the choice of a thumbnail size.
 */
import { isValidServerName } from './identifiers';

/**
 * "Matrix Content (mxc://) URIs": the media-id "MUST consist of only
 * alphanumeric (A-Za-z0-9), _ and - characters" (also the security
 * considerations' sanitisation rule against directory traversal).
 */
const MEDIA_ID = /^[A-Za-z0-9_-]+$/;

export function isValidMediaId(mediaId: string): boolean {
  return mediaId.length > 0 && mediaId.length <= 255 && MEDIA_ID.test(mediaId);
}

/** "Security considerations": both segments sanitised, the server name a valid server name. */
export function isValidMediaOrigin(serverName: string): boolean {
  return isValidServerName(serverName);
}

export function mxcUri(serverName: string, mediaId: string): string {
  return `mxc://${serverName}/${mediaId}`;
}

/** Splits an `mxc://<server-name>/<media-id>` URI; undefined unless both parts are valid. */
export function parseMxcUri(uri: string): { serverName: string; mediaId: string } | undefined {
  const match = /^mxc:\/\/([^/]+)\/([^/]+)$/.exec(uri);
  if (!match || !isValidMediaOrigin(match[1]) || !isValidMediaId(match[2])) return undefined;
  return { serverName: match[1], mediaId: match[2] };
}

/**
 * "Serving inline content": the Content-Type values a server SHOULD restrict
 * `Content-Disposition: inline` to. Anything else is served as `attachment`.
 */
export const INLINE_SAFE_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'text/css',
  'text/plain',
  'text/csv',
  'application/json',
  'application/ld+json',
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wave',
  'audio/wav',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/flac',
  'audio/x-flac',
]);

/** The media type without parameters, lower-cased (`Text/Plain; charset=utf-8` → `text/plain`). */
export function essenceOf(contentType: string): string {
  return contentType.split(';', 1)[0].trim().toLowerCase();
}

/**
 * A Content-Type header value as received, or undefined when it is not a
 * `type/subtype` with optional parameters made of visible ASCII (it is sent
 * back verbatim on download, so it must not carry anything a header cannot).
 */
export function sanitiseContentType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed.length === 0 || trimmed.length > 255 || !/^[\x20-\x7e]+$/.test(trimmed)) return undefined;
  return /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$/.test(trimmed) ? trimmed : undefined;
}

/** RFC 6266 section 4.1 `token` characters (RFC 7230 tchar); a filename made only of these needs no quoting. */
const ATTR_CHAR = /^[A-Za-z0-9!#$&+.^_`|~-]$/;

/**
 * `Content-Disposition` per RFC 6266: `inline` only for the spec's safe types
 * ("Serving inline content"), `attachment` otherwise; the filename as a
 * quoted `filename` when it is printable ASCII without `"` or `\`, else as
 * `filename*=utf-8''…` (RFC 8187 percent-encoding), so a name can never
 * break out of the header.
 */
export function contentDisposition(contentType: string, filename: string | undefined): string {
  const type = INLINE_SAFE_CONTENT_TYPES.has(essenceOf(contentType)) ? 'inline' : 'attachment';
  if (filename === undefined || filename === '') return type;
  if (/^[\x20-\x7e]*$/.test(filename) && !/["\\]/.test(filename)) return `${type}; filename="${filename}"`;
  const encoded = Array.from(new TextEncoder().encode(filename), (byte) => {
    const char = String.fromCharCode(byte);
    return byte < 0x80 && ATTR_CHAR.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
  return `${type}; filename*=utf-8''${encoded}`;
}

/**
 * The headers every served piece of media carries: the Content-Security-Policy
 * the spec recommends, and (v1.4) `Cross-Origin-Resource-Policy: cross-origin`.
 */
export const MEDIA_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';",
  'cross-origin-resource-policy': 'cross-origin',
};

export type ThumbnailMethod = 'crop' | 'scale';

export interface ThumbnailSpec {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/**
 * Which size to make for a request of `width` x `height` (client-server-api
 * "Thumbnails"): "Servers must never return thumbnails smaller than the
 * client's requested dimensions", so the smallest configured size of the
 * same method that covers the request; when none does, the requested size
 * itself (the caller never upscales, so the original bounds it).
 */
export function chooseThumbnailSize(sizes: readonly ThumbnailSpec[], width: number, height: number, method: ThumbnailMethod): ThumbnailSpec {
  const covering = sizes
    .filter((s) => s.method === method && s.width >= width && s.height >= height)
    .sort((a, b) => a.width * a.height - b.width * b.height);
  return covering[0] ?? { width, height, method };
}

/**
 * The output box of a thumbnail of an image `srcWidth` x `srcHeight` (never
 * larger than the source: "Servers MUST NOT upscale thumbnails").
 * "scale" keeps the aspect ratio and fits the image in the box, so one side
 * matches it and the other is smaller; "crop" fills the box at its aspect
 * ratio and cuts what overflows.
 */
export function thumbnailDimensions(srcWidth: number, srcHeight: number, target: ThumbnailSpec): { width: number; height: number } {
  if (target.method === 'crop') {
    return { width: Math.min(target.width, srcWidth), height: Math.min(target.height, srcHeight) };
  }
  const ratio = Math.min(target.width / srcWidth, target.height / srcHeight, 1);
  return { width: Math.max(1, Math.round(srcWidth * ratio)), height: Math.max(1, Math.round(srcHeight * ratio)) };
}
