import { chooseThumbnailSize, contentDisposition, isValidMediaId, parseMxcUri, sanitiseContentType, thumbnailDimensions, type ThumbnailSpec } from './media';

describe('media IDs and mxc URIs', () => {
  it('accepts only A-Za-z0-9, _ and - in media IDs', () => {
    expect(isValidMediaId('AQwafuaFswefuhsfAFAgsw_-9')).toBe(true);
    for (const bad of ['', '..', 'a/b', 'a%2Fb', 'ä', 'a.b', 'x'.repeat(256)]) expect(isValidMediaId(bad)).toBe(false);
  });

  it('parses mxc URIs and refuses traversal', () => {
    expect(parseMxcUri('mxc://example.org/abc')).toEqual({ serverName: 'example.org', mediaId: 'abc' });
    expect(parseMxcUri('mxc://[::1]:8448/abc')).toEqual({ serverName: '[::1]:8448', mediaId: 'abc' });
    expect(parseMxcUri('mxc://127.0.0.1/../../etc/passwd')).toBeUndefined();
    expect(parseMxcUri('mxc://exa mple.org/abc')).toBeUndefined();
    expect(parseMxcUri('https://example.org/abc')).toBeUndefined();
  });
});

describe('contentDisposition', () => {
  it('is inline only for the safe types', () => {
    expect(contentDisposition('image/png', undefined)).toBe('inline');
    expect(contentDisposition('Text/Plain; charset=utf-8', 'a.txt')).toBe('inline; filename="a.txt"');
    expect(contentDisposition('text/html', 'a.html')).toBe('attachment; filename="a.html"');
    expect(contentDisposition('image/svg+xml', undefined)).toBe('attachment');
    expect(contentDisposition('application/octet-stream', '')).toBe('attachment');
  });

  it('encodes names that cannot be quoted (RFC 6266 / RFC 8187)', () => {
    expect(contentDisposition('image/png', 'café ☕.png')).toBe("inline; filename*=utf-8''caf%C3%A9%20%E2%98%95.png");
    expect(contentDisposition('text/plain', 'a"b\\c')).toBe("inline; filename*=utf-8''a%22b%5Cc");
    expect(contentDisposition('text/plain', 'x\r\nSet-Cookie: a=b')).toBe("inline; filename*=utf-8''x%0D%0ASet-Cookie%3A%20a%3Db");
  });
});

describe('sanitiseContentType', () => {
  it('keeps type/subtype with parameters and drops anything else', () => {
    expect(sanitiseContentType('image/png')).toBe('image/png');
    expect(sanitiseContentType(' text/plain; charset=utf-8 ')).toBe('text/plain; charset=utf-8');
    expect(sanitiseContentType('nonsense')).toBeUndefined();
    expect(sanitiseContentType('text/plain\u00e9')).toBeUndefined();
    expect(sanitiseContentType(undefined)).toBeUndefined();
  });
});

describe('thumbnail sizes', () => {
  const sizes: ThumbnailSpec[] = [
    { width: 32, height: 32, method: 'crop' },
    { width: 96, height: 96, method: 'crop' },
    { width: 320, height: 240, method: 'scale' },
    { width: 640, height: 480, method: 'scale' },
  ];

  it('picks the smallest configured size covering the request, of the same method', () => {
    expect(chooseThumbnailSize(sizes, 40, 40, 'crop')).toEqual({ width: 96, height: 96, method: 'crop' });
    expect(chooseThumbnailSize(sizes, 32, 32, 'crop')).toEqual({ width: 32, height: 32, method: 'crop' });
    expect(chooseThumbnailSize(sizes, 100, 100, 'scale')).toEqual({ width: 320, height: 240, method: 'scale' });
    // Nothing covers it: the request itself, never smaller than asked.
    expect(chooseThumbnailSize(sizes, 1000, 900, 'scale')).toEqual({ width: 1000, height: 900, method: 'scale' });
  });

  it('never upscales', () => {
    expect(thumbnailDimensions(1000, 500, { width: 320, height: 240, method: 'scale' })).toEqual({ width: 320, height: 160 });
    expect(thumbnailDimensions(100, 50, { width: 320, height: 240, method: 'scale' })).toEqual({ width: 100, height: 50 });
    expect(thumbnailDimensions(1000, 500, { width: 96, height: 96, method: 'crop' })).toEqual({ width: 96, height: 96 });
    expect(thumbnailDimensions(50, 500, { width: 96, height: 96, method: 'crop' })).toEqual({ width: 50, height: 96 });
  });
});
