import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FederationHttpError, FederationUnreachableError } from '@atrium/federation-client';
import { FileBlobStore } from './storage/blob-store';
import { dispositionFilename, fetchRemoteMedia, multipartBoundary, parseMultipart, type RemoteMediaClient } from './remote-media';

function multipart(boundary: string, parts: string[]): Buffer {
  return Buffer.from(`--${boundary}\r\n${parts.join(`\r\n--${boundary}\r\n`)}\r\n--${boundary}--\r\n`, 'latin1');
}

describe('multipart answers (RFC 2046)', () => {
  it('reads the boundary parameter', () => {
    expect(multipartBoundary('multipart/mixed; boundary=abc123')).toBe('abc123');
    expect(multipartBoundary('multipart/mixed; charset=x; boundary="a b"')).toBe('a b');
    expect(multipartBoundary('application/json')).toBeUndefined();
    expect(multipartBoundary(undefined)).toBeUndefined();
  });

  it('splits the parts with their headers, keeping binary bodies intact', () => {
    const binary = Buffer.from([0, 13, 10, 45, 45, 255, 1]).toString('latin1');
    const body = multipart('xyz', ['Content-Type: application/json\r\n\r\n{}', `Content-Type: image/png\r\nContent-Disposition: inline; filename="a.png"\r\n\r\n${binary}`]);
    const parts = parseMultipart(body, 'xyz')!;
    expect(parts).toHaveLength(2);
    expect(parts[0].headers['content-type']).toBe('application/json');
    expect(parts[0].body.toString()).toBe('{}');
    expect(parts[1].headers['content-disposition']).toBe('inline; filename="a.png"');
    expect([...parts[1].body]).toEqual([0, 13, 10, 45, 45, 255, 1]);
  });

  it('refuses malformed bodies', () => {
    expect(parseMultipart(Buffer.from('no boundary here'), 'xyz')).toBeUndefined();
    expect(parseMultipart(Buffer.from('--xyz\r\nContent-Type: a/b\r\n\r\nunterminated'), 'xyz')).toBeUndefined();
  });

  it('reads filenames of Content-Disposition, the extended form first', () => {
    expect(dispositionFilename('inline; filename="a \\"b\\".png"')).toBe('a "b".png');
    expect(dispositionFilename("attachment; filename=x.bin; filename*=utf-8''caf%C3%A9.txt")).toBe('café.txt');
    expect(dispositionFilename('attachment; filename=plain.txt')).toBe('plain.txt');
    expect(dispositionFilename('inline')).toBeUndefined();
  });
});

describe('fetchRemoteMedia', () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-media-'));
    blobs = new FileBlobStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const answering = (answer: () => Promise<Awaited<ReturnType<RemoteMediaClient['requestBytes']>>>): RemoteMediaClient => ({ requestBytes: answer });

  it('stages the media part with its type and filename', async () => {
    let path = '';
    const client: RemoteMediaClient = {
      requestBytes: async (request) => {
        path = `${request.path}?timeout_ms=${String(request.query?.timeout_ms)}`;
        return {
          status: 200,
          headers: { 'content-type': 'multipart/mixed; boundary=b0' },
          body: multipart('b0', ['Content-Type: application/json\r\n\r\n{}', 'Content-Type: text/plain\r\nContent-Disposition: inline; filename="r.txt"\r\n\r\nremote bytes']),
        };
      },
    };
    const fetched = await fetchRemoteMedia(client, blobs, 'remote.test', 'abc', { timeoutMs: 1000, maxBytes: 100 });
    expect(path).toBe('/_matrix/federation/v1/media/download/abc?timeout_ms=1000');
    expect(fetched.contentType).toBe('text/plain');
    expect(fetched.filename).toBe('r.txt');
    expect(fetched.staged.size).toBe('remote bytes'.length);
  });

  it('maps failures to the client-server answers', async () => {
    const failWith = (err: Error) => fetchRemoteMedia(answering(() => Promise.reject(err)), blobs, 'remote.test', 'abc', { timeoutMs: 10, maxBytes: 100 }).catch((e: unknown) => e);
    expect(await failWith(new FederationHttpError('remote.test', 404, 'M_NOT_FOUND', {}, 'nope'))).toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
    expect(await failWith(new FederationHttpError('remote.test', 504, 'M_NOT_YET_UPLOADED', {}, 'wait'))).toMatchObject({ status: 504, errcode: 'M_NOT_YET_UPLOADED' });
    expect(await failWith(new FederationUnreachableError('remote.test', 'protocol', 'too big'))).toMatchObject({ status: 502, errcode: 'M_TOO_LARGE' });
    expect(await failWith(new FederationUnreachableError('remote.test', 'connect', 'refused'))).toMatchObject({ status: 502, errcode: 'M_UNKNOWN' });
    const notMultipart = await fetchRemoteMedia(answering(async () => ({ status: 200, headers: { 'content-type': 'image/png' }, body: Buffer.from('x') })), blobs, 'remote.test', 'abc', { timeoutMs: 10, maxBytes: 100 }).catch((e: unknown) => e);
    expect(notMultipart).toMatchObject({ status: 502 });
    const redirect = await fetchRemoteMedia(
      answering(async () => ({ status: 200, headers: { 'content-type': 'multipart/mixed; boundary=q' }, body: multipart('q', ['Content-Type: application/json\r\n\r\n{}', 'Location: https://cdn.example/x\r\n\r\n']) })),
      blobs,
      'remote.test',
      'abc',
      { timeoutMs: 10, maxBytes: 100 },
    ).catch((e: unknown) => e);
    expect(redirect).toMatchObject({ status: 502 });
  });
});
