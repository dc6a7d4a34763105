/**
 * GET /_matrix/client/v1/media/preview_url (and the deprecated v3 one):
 * fetches a page, reads its OpenGraph tags (https://ogp.me/), stores the
 * `og:image` as local media and answers `mxc://` plus `matrix:image:size`.
 *
 * The server fetches what a client names, so every connection is checked
 * against `federation.ip_range_blocklist` (and its allowlist) on the address
 * actually connected to, after DNS, for each redirect too: a URL naming an
 * internal host, or a public name resolving to an internal address, is
 * refused. Answers are cached for an hour, bodies read up to a bound.
 */
import { createHash } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Parser } from 'htmlparser2';
import sharp from 'sharp';
import type { AtriumConfig } from '@atrium/config';
import { IpRangeFilter } from '@atrium/federation-client';
import { Errors, MatrixError } from '@atrium/http';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import type { MediaService } from './media.service';

const CACHE_MS = 3600_000;
const PAGE_MAX_BYTES = 1024 * 1024;
const FETCH_TIMEOUT_MS = 10_000;
const MAX_REDIRECTS = 5;

interface PreviewDoc extends Doc {
  url: string;
  ts: number;
  /** The answer as JSON text (OpenGraph keys have colons and dots). */
  og: string;
}

class BlockedError extends Error {}

export interface FetchedPage {
  status: number;
  contentType: string;
  body: Buffer;
  url: URL;
  /** true when the body was cut at the limit. */
  truncated: boolean;
}

/**
 * GET with the IP checks: IP-literal hosts are checked before connecting,
 * names through a `lookup` that drops blocked addresses (so the check and
 * the connection use the same address; no second resolution to rebind).
 */
export async function guardedGet(start: URL, filter: IpRangeFilter, maxBytes: number, truncate: boolean): Promise<FetchedPage> {
  let url = start;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw Errors.invalidParam('Only http and https URLs can be previewed');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && filter.isBlocked(host)) throw new BlockedError(`${host} is in a blocked range`);
    const lookup: RequestOptions['lookup'] = (hostname, options, callback) => {
      dnsLookup(hostname, { all: true }, (err, addresses: LookupAddress[]) => {
        if (err) return (callback as (e: Error) => void)(err);
        const allowed = addresses.filter((a) => !filter.isBlocked(a.address));
        if (allowed.length === 0) return (callback as (e: Error) => void)(new BlockedError(`${hostname} resolves to blocked addresses only`));
        if ((options as { all?: boolean }).all) return (callback as (e: null, a: LookupAddress[]) => void)(null, allowed);
        (callback as (e: null, a: string, f: number) => void)(null, allowed[0].address, allowed[0].family);
      });
    };
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
        url,
        { method: 'GET', lookup, timeout: FETCH_TIMEOUT_MS, headers: { 'user-agent': 'Atrium URL preview', accept: 'text/html,application/xhtml+xml,image/*;q=0.8,*/*;q=0.5' } },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (status >= 300 && status < 400 && location) {
      response.resume();
      url = new URL(location, url);
      continue;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => response.destroy(new Error('timed out')), FETCH_TIMEOUT_MS);
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          truncated = true;
          if (truncate) chunks.push(chunk.subarray(0, chunk.length - (size - maxBytes)));
          response.destroy();
          clearTimeout(timer);
          resolve();
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        clearTimeout(timer);
        resolve();
      });
      response.on('error', (err) => {
        clearTimeout(timer);
        if (truncated) resolve();
        else reject(err);
      });
    });
    return { status, contentType: String(response.headers['content-type'] ?? ''), body: Buffer.concat(chunks), url, truncated };
  }
  throw new MatrixError(502, 'M_UNKNOWN', 'Too many redirects');
}

/** The OpenGraph tags of a page, with `<title>` and `<meta name="description">` as fallbacks. */
export function parseOpenGraph(html: string): Record<string, string> {
  const og: Record<string, string> = {};
  let title = '';
  let inTitle = false;
  let description: string | undefined;
  const parser = new Parser(
    {
      onopentag(name, attributes) {
        if (name === 'title') inTitle = true;
        if (name !== 'meta') return;
        const key = attributes.property ?? attributes.name;
        const content = attributes.content;
        if (key === undefined || content === undefined) return;
        if (key.startsWith('og:') && !(key in og)) og[key] = content;
        if (key.toLowerCase() === 'description' && description === undefined) description = content;
      },
      ontext(text) {
        if (inTitle) title += text;
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  parser.write(html);
  parser.end();
  if (!('og:title' in og) && title.trim()) og['og:title'] = title.trim();
  if (!('og:description' in og) && description) og['og:description'] = description;
  return og;
}

export class UrlPreviewer {
  private readonly filter: IpRangeFilter;

  private constructor(
    private readonly config: AtriumConfig,
    private readonly cache: Collection<PreviewDoc>,
    private readonly media: MediaService,
  ) {
    this.filter = new IpRangeFilter(config.federation.ip_range_blocklist, config.federation.ip_range_allowlist);
  }

  static async open(config: AtriumConfig, store: DocumentStore, media: MediaService): Promise<UrlPreviewer> {
    return new UrlPreviewer(config, await store.collection<PreviewDoc>({ name: 'media_url_previews' }), media);
  }

  async preview(raw: string): Promise<Record<string, unknown>> {
    if (!this.config.media.url_preview_enabled) throw Errors.forbidden('URL previews are disabled on this server');
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw Errors.invalidParam('url is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw Errors.invalidParam('Only http and https URLs can be previewed');
    url.hash = '';
    const key = createHash('sha256').update(url.href).digest('hex');
    const cached = await this.cache.get(key);
    if (cached && cached.ts > Date.now() - CACHE_MS) return JSON.parse(cached.og) as Record<string, unknown>;

    let answer: Record<string, unknown>;
    try {
      answer = await this.build(url);
    } catch (err) {
      if (err instanceof MatrixError) throw err;
      if (err instanceof BlockedError) throw Errors.forbidden('This URL cannot be previewed: its address is blocked');
      throw new MatrixError(502, 'M_UNKNOWN', 'The URL could not be fetched');
    }
    await this.cache.put({ _id: key, url: url.href, ts: Date.now(), og: JSON.stringify(answer) });
    return answer;
  }

  private async build(url: URL): Promise<Record<string, unknown>> {
    const page = await guardedGet(url, this.filter, PAGE_MAX_BYTES, true);
    if (page.status < 200 || page.status >= 300) throw new MatrixError(502, 'M_UNKNOWN', `The URL answered ${page.status}`);
    const type = page.contentType.split(';')[0].trim().toLowerCase();
    if (type.startsWith('image/')) {
      if (page.truncated) return {};
      return this.withImage({}, page.body, type);
    }
    if (type !== 'text/html' && type !== 'application/xhtml+xml') return {};
    const og: Record<string, unknown> = parseOpenGraph(page.body.toString('utf8'));
    const image = og['og:image'];
    delete og['og:image'];
    if (typeof image !== 'string') return og;
    try {
      const fetched = await guardedGet(new URL(image, page.url), this.filter, this.config.media.max_upload_size, false);
      const imageType = fetched.contentType.split(';')[0].trim().toLowerCase();
      if (fetched.status >= 200 && fetched.status < 300 && !fetched.truncated && imageType.startsWith('image/')) {
        return this.withImage(og, fetched.body, imageType);
      }
    } catch {
      // A page whose image cannot be had is still previewed, without the image.
    }
    return og;
  }

  /** "og:image: An mxc:// URI to the image"; "matrix:image:size: The byte-size of the image". */
  private async withImage(og: Record<string, unknown>, bytes: Buffer, type: string): Promise<Record<string, unknown>> {
    const stored = await this.media.storeFetched(bytes, type);
    const answer: Record<string, unknown> = { ...og, 'og:image': stored.content_uri, 'og:image:type': type, 'matrix:image:size': stored.size };
    // Dimensions as the spec's example gives them, when the image can be read.
    const meta = await sharp(bytes, { limitInputPixels: this.config.media.max_thumbnail_pixels }).metadata().catch(() => undefined);
    if (meta?.width && meta.height) {
      answer['og:image:width'] = meta.width;
      answer['og:image:height'] = meta.pageHeight ?? meta.height;
    }
    return answer;
  }
}
