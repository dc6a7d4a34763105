/**
 * Unpadded Base64, standard and URL-safe.
 * Spec: content/appendices.md ("Unpadded Base64", "URL-safe unpadded Base64",
 * "Binary data").
 *
 * Encoding never emits `=`. Decoding accepts input "with or without padding
 * characters" (appendices.md "Unpadded Base64": implementations SHOULD accept
 * both) but otherwise checks the alphabet, because Node's own decoder silently
 * skips characters it does not know, which would let garbage in a signature or
 * key slip through as some other byte string. Non-zero trailing bits are
 * accepted: the spec's own test vector seed
 * (`YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`) has them.
 */

/** Thrown by the decoders when the input is not Base64 of the expected alphabet. */
export class Base64Error extends Error {
  override readonly name = 'Base64Error';
}

const STANDARD_ALPHABET = /^[A-Za-z0-9+/]*$/;
const URL_SAFE_ALPHABET = /^[A-Za-z0-9_-]*$/;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function stripPadding(encoded: string): string {
  let end = encoded.length;
  while (end > 0 && encoded.charCodeAt(end - 1) === 0x3d /* = */) end--;
  return end === encoded.length ? encoded : encoded.slice(0, end);
}

/** Standard unpadded Base64 (RFC 4648 alphabet with `+` and `/`, no `=`). */
export function encodeBase64(bytes: Uint8Array): string {
  return stripPadding(asBuffer(bytes).toString('base64'));
}

/** URL-safe unpadded Base64 (`-` and `_` as the 62nd and 63rd characters, no `=`). */
export function encodeBase64Url(bytes: Uint8Array): string {
  // Node's base64url output is already unpadded.
  return asBuffer(bytes).toString('base64url');
}

/**
 * Checks padding and alphabet; returns the unpadded body, or undefined if the
 * input is not valid. Padded input must be padded correctly (a multiple of
 * four characters, at most two `=`); unpadded input must not have a length of
 * 4n+1, which no byte string encodes to.
 */
function validBody(encoded: string, alphabet: RegExp): string | undefined {
  const body = stripPadding(encoded);
  const padding = encoded.length - body.length;
  if (padding > 0 && (padding > 2 || encoded.length % 4 !== 0)) return undefined;
  if (body.length % 4 === 1) return undefined;
  if (!alphabet.test(body)) return undefined;
  return body;
}

/** Decodes standard Base64, padded or not. Throws Base64Error on invalid input. */
export function decodeBase64(encoded: string): Buffer {
  const body = validBody(encoded, STANDARD_ALPHABET);
  if (body === undefined) throw new Base64Error('invalid unpadded Base64');
  return Buffer.from(body, 'base64');
}

/** Decodes URL-safe Base64, padded or not. Throws Base64Error on invalid input. */
export function decodeBase64Url(encoded: string): Buffer {
  const body = validBody(encoded, URL_SAFE_ALPHABET);
  if (body === undefined) throw new Base64Error('invalid URL-safe unpadded Base64');
  return Buffer.from(body, 'base64url');
}

/** Like decodeBase64 but returns undefined instead of throwing. */
export function tryDecodeBase64(encoded: string): Buffer | undefined {
  const body = validBody(encoded, STANDARD_ALPHABET);
  return body === undefined ? undefined : Buffer.from(body, 'base64');
}

/** Like decodeBase64Url but returns undefined instead of throwing. */
export function tryDecodeBase64Url(encoded: string): Buffer | undefined {
  const body = validBody(encoded, URL_SAFE_ALPHABET);
  return body === undefined ? undefined : Buffer.from(body, 'base64url');
}
