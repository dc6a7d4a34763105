/**
 * Thumbnails with sharp (libvips). Spec: client-server-api "Thumbnails",
 * and the `animated` parameter of GET /_matrix/client/v1/media/thumbnail.
 */
import sharp, { type Metadata } from 'sharp';
import { chooseThumbnailSize, essenceOf, thumbnailDimensions, type ThumbnailSpec, type ThumbnailMethod } from '@atrium/matrix';

export interface ThumbnailRequest {
  width: number;
  height: number;
  method: ThumbnailMethod;
  /** true: animated if the source is; false or absent: never animated. */
  animated: boolean;
}

export type ThumbnailOutcome =
  /** Serve the original bytes: they are already no larger than asked, in a type thumbnails may have. */
  | { kind: 'original' }
  | { kind: 'made'; bytes: Buffer; contentType: string; cacheName: string }
  /** The source cannot be thumbnailed (not an image sharp can read). */
  | { kind: 'unsupported' }
  /** More pixels than the configured limit. */
  | { kind: 'too-large' };

/** Image types sharp decodes that are worth a thumbnail (SVG is left out: it may fetch things and is rendered by clients anyway). */
const SOURCE_TYPES = new Set(['image/jpeg', 'image/png', 'image/apng', 'image/gif', 'image/webp', 'image/avif', 'image/tiff', 'image/heif', 'image/heic']);
/** The thumbnail Content-Types the spec allows (GET …/thumbnail, 200 Content-Type enum). */
const ORIGINAL_OK = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif']);
const ANIMATABLE_FORMATS = new Set(['gif', 'webp', 'png']);

export class Thumbnailer {
  constructor(
    private readonly sizes: readonly ThumbnailSpec[],
    private readonly maxPixels: number,
  ) {}

  /** The cache file name of a thumbnail of this request (the choice of size is deterministic, so replicas agree). */
  cacheName(request: ThumbnailRequest): string {
    const target = chooseThumbnailSize(this.sizes, request.width, request.height, request.method);
    return `${target.width}x${target.height}-${target.method}${request.animated ? '-animated' : ''}`;
  }

  async make(sourcePath: string, contentType: string, request: ThumbnailRequest): Promise<ThumbnailOutcome> {
    if (!SOURCE_TYPES.has(essenceOf(contentType))) return { kind: 'unsupported' };
    let meta: Metadata;
    try {
      meta = await sharp(sourcePath, { animated: true, limitInputPixels: false }).metadata();
    } catch {
      return { kind: 'unsupported' };
    }
    const width = meta.width;
    const pages = meta.pages ?? 1;
    const height = meta.pageHeight ?? meta.height;
    if (!width || !height) return { kind: 'unsupported' };
    if (width * height > this.maxPixels) return { kind: 'too-large' };

    const target = chooseThumbnailSize(this.sizes, request.width, request.height, request.method);
    const dims = thumbnailDimensions(width, height, target);
    const animate = request.animated && pages > 1 && ANIMATABLE_FORMATS.has(meta.format ?? '');
    // "When the content is smaller than the requested dimensions, servers should return the original
    // content rather than thumbnail it" — if it is a type a thumbnail may have, and is not animated
    // unless animation was asked for ("When false, the server MUST NOT return an animated thumbnail").
    if (dims.width === width && dims.height === height && ORIGINAL_OK.has(essenceOf(contentType)) && (pages === 1 || animate)) {
      return { kind: 'original' };
    }

    let pipeline = sharp(sourcePath, { animated: animate, limitInputPixels: this.maxPixels });
    if (!animate) pipeline = pipeline.rotate(); // EXIF orientation, so the thumbnail is the right way up
    pipeline = pipeline.resize(dims.width, dims.height, { fit: target.method === 'crop' ? 'cover' : 'fill' });
    let bytes: Buffer;
    let outType: string;
    try {
      if (animate) {
        // "Servers SHOULD prefer to return image/webp thumbnails when supporting animation."
        bytes = await pipeline.webp({ quality: 80 }).toBuffer();
        outType = 'image/webp';
      } else if (meta.hasAlpha || meta.format === 'png' || meta.format === 'gif') {
        bytes = await pipeline.png().toBuffer();
        outType = 'image/png';
      } else {
        bytes = await pipeline.jpeg({ quality: 80 }).toBuffer();
        outType = 'image/jpeg';
      }
    } catch {
      return { kind: 'unsupported' };
    }
    return { kind: 'made', bytes, contentType: outType, cacheName: this.cacheName(request) };
  }
}

/** The content type of a cached thumbnail, from the first bytes (the cache keeps bytes only). */
export function sniffImageType(bytes: Buffer): string {
  if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47) return 'image/png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  if (bytes.length >= 6 && bytes.toString('latin1', 0, 3) === 'GIF') return 'image/gif';
  return 'application/octet-stream';
}
