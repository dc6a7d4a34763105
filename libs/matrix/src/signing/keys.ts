/**
 * Ed25519 signing keys and verify keys.
 * Spec: content/appendices.md ("Signing Details": key identifiers are
 * `<algorithm>:<version>`, only `ed25519` is defined), server-server-api.md
 * "Publishing Keys" and data/api/server-server/definitions/keys.yaml (the
 * version matches `[a-zA-Z0-9_]`, keys are unpadded Base64 of the raw key).
 *
 * The key file format is Synapse's signing key file: one key per line,
 * `ed25519 <version> <unpadded base64 of the 32-byte seed>`, so a Synapse key
 * can be reused and ours read by Synapse tooling.
 *
 * node:crypto does the Ed25519 work. Building a KeyObject costs several times
 * a verification, so public keys are turned into KeyObjects once and cached.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { decodeBase64, encodeBase64, tryDecodeBase64 } from '../base64';

export const ED25519 = 'ed25519';

/** DER prefixes that wrap a raw 32-byte Ed25519 seed (PKCS#8) or public key (SPKI), RFC 8410. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A key version: keys.yaml "The version must have characters matching the regular expression [a-zA-Z0-9_]". */
export function isValidKeyVersion(version: string): boolean {
  return /^[a-zA-Z0-9_]+$/.test(version);
}

/** Splits `ed25519:abc` into algorithm and version; undefined if there is no colon. */
export function parseKeyId(keyId: string): { algorithm: string; version: string } | undefined {
  const colon = keyId.indexOf(':');
  if (colon <= 0) return undefined;
  return { algorithm: keyId.slice(0, colon), version: keyId.slice(colon + 1) };
}

export interface SigningKey {
  readonly algorithm: typeof ED25519;
  /** The key's version, e.g. `a_AbCd`. */
  readonly version: string;
  /** `ed25519:<version>`: the signing key identifier. */
  readonly keyId: string;
  /** The 32-byte seed (the private key). */
  readonly seed: Buffer;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The raw 32-byte public key in unpadded Base64, as published in `verify_keys`. */
  readonly publicKeyBase64: string;
}

/** The raw 32-byte public key of an Ed25519 KeyObject. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

/** A signing key from its 32-byte seed. */
export function signingKeyFromSeed(seed: Uint8Array, version: string): SigningKey {
  if (seed.length !== 32) throw new Error(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  if (!isValidKeyVersion(version)) throw new Error(`invalid key version ${JSON.stringify(version)}`);
  const seedBuffer = Buffer.from(seed);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seedBuffer]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  return {
    algorithm: ED25519,
    version,
    keyId: `${ED25519}:${version}`,
    seed: seedBuffer,
    privateKey,
    publicKey,
    publicKeyBase64: encodeBase64(rawPublicKey(publicKey)),
  };
}

const VERSION_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A new random key. Without a version, one like Synapse's (`a_` and four random letters or digits). */
export function generateSigningKey(version?: string): SigningKey {
  let v = version;
  if (v === undefined) {
    v = 'a_';
    for (const byte of randomBytes(4)) v += VERSION_CHARS[byte % VERSION_CHARS.length];
  }
  return signingKeyFromSeed(randomBytes(32), v);
}

/**
 * Reads a signing key file: one `ed25519 <version> <base64 seed>` per
 * non-empty line (Synapse's format). The first key is the one to sign with.
 * Throws on a malformed line, naming its number (never its content).
 */
export function parseSigningKeyFile(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 3) throw new Error(`signing key file line ${i + 1}: expected "ed25519 <version> <seed>"`);
    const [algorithm, version, seedBase64] = parts;
    if (algorithm !== ED25519) throw new Error(`signing key file line ${i + 1}: unsupported algorithm ${JSON.stringify(algorithm)}`);
    if (!isValidKeyVersion(version)) throw new Error(`signing key file line ${i + 1}: invalid key version`);
    const seed = tryDecodeBase64(seedBase64);
    if (!seed || seed.length !== 32) throw new Error(`signing key file line ${i + 1}: the seed is not 32 bytes of Base64`);
    keys.push(signingKeyFromSeed(seed, version));
  }
  if (keys.length === 0) throw new Error('signing key file holds no key');
  return keys;
}

/** Writes keys in the signing key file format, one line each, ending with a newline. */
export function serialiseSigningKeyFile(keys: readonly SigningKey[]): string {
  return keys.map((k) => `${k.algorithm} ${k.version} ${encodeBase64(k.seed)}\n`).join('');
}

// ---------------------------------------------------------------------------
// Verify keys
// ---------------------------------------------------------------------------

const PUBLIC_KEY_CACHE_LIMIT = 10_000;
const publicKeyCache = new Map<string, KeyObject>();

/**
 * The KeyObject for a raw Ed25519 public key given in unpadded Base64, built
 * once and then served from a bounded cache (oldest entries leave first).
 * Throws if the text is not Base64 of 32 bytes.
 */
export function verifyKeyFromBase64(publicKeyBase64: string): KeyObject {
  const cached = publicKeyCache.get(publicKeyBase64);
  if (cached) return cached;
  const raw = decodeBase64(publicKeyBase64);
  if (raw.length !== 32) throw new Error(`an Ed25519 public key is 32 bytes, got ${raw.length}`);
  const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
  if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) {
    const oldest = publicKeyCache.keys().next();
    if (!oldest.done) publicKeyCache.delete(oldest.value);
  }
  publicKeyCache.set(publicKeyBase64, key);
  return key;
}
