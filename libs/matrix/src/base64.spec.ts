/** Unpadded Base64 (content/appendices.md "Unpadded Base64", "URL-safe unpadded Base64"). */
import fc from 'fast-check';
import {
  Base64Error,
  decodeBase64,
  decodeBase64Url,
  encodeBase64,
  encodeBase64Url,
  tryDecodeBase64,
  tryDecodeBase64Url,
} from './base64';

describe('unpadded Base64', () => {
  it.each([
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ])('UNPADDED_BASE64(%j) = %j (spec examples), and back', (plain, encoded) => {
    expect(encodeBase64(Buffer.from(plain))).toBe(encoded);
    expect(decodeBase64(encoded).toString()).toBe(plain);
  });

  it('accepts padded input on decode', () => {
    expect(decodeBase64('Zg==').toString()).toBe('f');
    expect(decodeBase64('Zm8=').toString()).toBe('fo');
    expect(decodeBase64Url('Zm8=').toString()).toBe('fo');
  });

  it('uses + and / in the standard alphabet, - and _ in the URL-safe one', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf]);
    expect(encodeBase64(bytes)).toBe('+/+/');
    expect(encodeBase64Url(bytes)).toBe('-_-_');
    expect(decodeBase64('+/+/').equals(bytes)).toBe(true);
    expect(decodeBase64Url('-_-_').equals(bytes)).toBe(true);
  });

  it('refuses the other alphabet, bad padding, impossible lengths and garbage', () => {
    expect(() => decodeBase64('-_-_')).toThrow(Base64Error);
    expect(() => decodeBase64Url('+/+/')).toThrow(Base64Error);
    for (const bad of ['Z', 'Zm9vY', 'Zg=', 'Zg===', 'Z===', 'Zm9v!', 'Zm 9v', 'Zg==Zg', '=', 'Zm8=x']) {
      expect([bad, tryDecodeBase64(bad)]).toEqual([bad, undefined]);
      expect([bad, tryDecodeBase64Url(bad)]).toEqual([bad, undefined]);
    }
  });

  it('accepts non-zero trailing bits (the spec test vector seed has them)', () => {
    expect(decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1')).toHaveLength(32);
  });

  it('encodes Uint8Array views without copying the wrong range', () => {
    const backing = new Uint8Array([1, 2, 3, 0x66, 0x6f, 0x6f, 9]);
    expect(encodeBase64(backing.subarray(3, 6))).toBe('Zm9v');
  });

  it('round-trips any bytes in both alphabets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const std = encodeBase64(bytes);
        const url = encodeBase64Url(bytes);
        expect(std).not.toContain('=');
        expect(url).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(new Uint8Array(decodeBase64(std))).toEqual(bytes);
        expect(new Uint8Array(decodeBase64Url(url))).toEqual(bytes);
        // Padded forms decode too.
        expect(new Uint8Array(decodeBase64(Buffer.from(bytes).toString('base64')))).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });
});
