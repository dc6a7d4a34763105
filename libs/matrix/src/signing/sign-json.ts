/**
 * Signing JSON and checking signatures.
 * Spec: content/appendices.md "Signing JSON", "Signing Details", "Checking
 * for a Signature".
 */
import { KeyObject, sign, verify } from 'node:crypto';
import { encodeBase64, tryDecodeBase64 } from '../base64';
import { canonicalJsonBytes } from '../canonical-json';
import { ED25519, verifyKeyFromBase64 } from './keys';

export type Signatures = Record<string, Record<string, string>>;

export interface SignOptions {
  /** Canonical JSON number rules (default true; false for events of room versions 1–5). */
  strict?: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The bytes a signature covers: the canonical JSON of the object "without
 * `signatures` or keys grouped as `unsigned`" (appendices.md "Signing Details").
 */
export function signedBytes(value: object, options?: SignOptions): Buffer {
  const { signatures: _signatures, unsigned: _unsigned, ...rest } = value as Record<string, unknown>;
  return canonicalJsonBytes(rest, options);
}

/**
 * What signs: a key ID and its private key. SigningKey fits, and so does any
 * object holding those two (e.g. the platform's loaded server key).
 */
export interface JsonSigner {
  /** `ed25519:<version>` */
  readonly keyId: string;
  readonly privateKey: KeyObject;
}

/**
 * Signs `value` as `serverName` with `key`: the signature goes under
 * `signatures[serverName][key.keyId]`, existing signatures are kept and
 * `unsigned` is carried over untouched. Returns a new object; the input is
 * not modified. The key may also be given as key ID and private key.
 */
export function signJson<T extends object>(value: T, serverName: string, key: JsonSigner, options?: SignOptions): T & { signatures: Signatures };
export function signJson<T extends object>(
  value: T,
  serverName: string,
  keyId: string,
  privateKey: KeyObject,
  options?: SignOptions,
): T & { signatures: Signatures };
export function signJson<T extends object>(
  value: T,
  serverName: string,
  keyOrId: JsonSigner | string,
  privateKeyOrOptions?: KeyObject | SignOptions,
  maybeOptions?: SignOptions,
): T & { signatures: Signatures } {
  let keyId: string;
  let privateKey: KeyObject;
  let options: SignOptions | undefined;
  if (typeof keyOrId === 'string') {
    if (privateKeyOrOptions === undefined || !isKeyObject(privateKeyOrOptions)) throw new TypeError('signJson: a key ID needs its private key');
    keyId = keyOrId;
    privateKey = privateKeyOrOptions;
    options = maybeOptions;
  } else {
    keyId = keyOrId.keyId;
    privateKey = keyOrId.privateKey;
    options = privateKeyOrOptions !== undefined && !isKeyObject(privateKeyOrOptions) ? privateKeyOrOptions : undefined;
  }
  const signature = encodeBase64(sign(null, signedBytes(value, options), privateKey));
  const existing = (value as { signatures?: unknown }).signatures;
  const signatures: Signatures = {};
  if (isRecord(existing)) {
    for (const [server, keys] of Object.entries(existing)) {
      if (isRecord(keys)) signatures[server] = { ...(keys as Record<string, string>) };
    }
  }
  signatures[serverName] = { ...signatures[serverName], [keyId]: signature };
  return { ...value, signatures };
}

function isKeyObject(value: unknown): value is KeyObject {
  return value instanceof KeyObject;
}

/** A public key as given (unpadded Base64 of the raw key) or already built. */
export type VerifyKeyInput = string | KeyObject;

function toKeyObject(key: VerifyKeyInput): KeyObject | undefined {
  if (typeof key !== 'string') return key;
  try {
    return verifyKeyFromBase64(key);
  } catch {
    return undefined;
  }
}

/** Checks one Base64 signature over already-encoded bytes. False for bad Base64 or a wrong length. */
export function verifySignatureBytes(bytes: Uint8Array, signatureBase64: string, key: VerifyKeyInput): boolean {
  const keyObject = toKeyObject(key);
  if (!keyObject) return false;
  const signature = tryDecodeBase64(signatureBase64);
  if (!signature || signature.length !== 64) return false;
  return verify(null, bytes, keyObject, signature);
}

/**
 * Whether `value` carries a valid signature by `serverName` with `keyId`,
 * checked with `publicKey` (appendices.md "Checking for a Signature", steps
 * 4–7 for one key).
 */
export function verifyJsonSignature(
  value: object,
  serverName: string,
  keyId: string,
  publicKey: VerifyKeyInput,
  options?: SignOptions,
): boolean {
  const signatures = (value as { signatures?: unknown }).signatures;
  if (!isRecord(signatures)) return false;
  const byServer = signatures[serverName];
  if (!isRecord(byServer)) return false;
  const signature = byServer[keyId];
  if (typeof signature !== 'string') return false;
  return verifySignatureBytes(signedBytes(value, options), signature, publicKey);
}

/** A verification key known for a server, and until when it may be used. */
export interface KnownVerifyKey {
  key: VerifyKeyInput;
  /**
   * The key's `valid_until_ts` (for a current key) or `expired_ts` (for an old
   * one), in ms. Checked only when the caller passes `validAt`.
   */
  validUntilTs?: number;
}

/** Finds a verification key; undefined when it is not known. Fetching keys is the caller's (asynchronous) business. */
export type VerifyKeyLookup = (serverName: string, keyId: string) => KnownVerifyKey | undefined;

export interface CheckSignaturesOptions extends SignOptions {
  /**
   * Keys whose validity ends before this time are skipped, as if unknown
   * (server-server-api.md "Validating hashes and signatures on received
   * events": "keys that are known to have expired prior to the event's
   * origin_server_ts are ignored"; rooms/fragments/v5-signing-requirements.md).
   */
  validAt?: number;
}

export type SignatureCheckFailure =
  /** Step 1: no `signatures` entry for the server. */
  | 'missing-signature'
  /** Step 2: no key identifier with an algorithm we understand. */
  | 'unsupported-algorithm'
  /** Step 3: no verification key found (or none valid at `validAt`). */
  | 'unknown-key'
  /** Steps 4–7: a signature by a known key did not verify (or was not Base64). */
  | 'bad-signature';

export type SignatureCheckResult =
  | { ok: true; verified: Array<{ serverName: string; keyId: string }> }
  | { ok: false; serverName: string; reason: SignatureCheckFailure; keyId?: string };

/**
 * Checks that every server in `requiredServers` has signed `value`
 * (appendices.md "Checking for a Signature", for each server in turn). For
 * each, every signature made with a known, still valid `ed25519` key must
 * verify, and at least one must; signatures by unknown keys are ignored
 * (server-server-api.md: "If a signature is from an unknown or expired key,
 * it is skipped"). The canonical bytes are computed once for all servers.
 */
export function checkSignatures(
  value: object,
  requiredServers: Iterable<string>,
  lookup: VerifyKeyLookup,
  options?: CheckSignaturesOptions,
): SignatureCheckResult {
  const signatures = (value as { signatures?: unknown }).signatures;
  let bytes: Buffer | undefined;
  const verified: Array<{ serverName: string; keyId: string }> = [];
  for (const serverName of requiredServers) {
    const byServer = isRecord(signatures) ? signatures[serverName] : undefined;
    if (!isRecord(byServer)) return { ok: false, serverName, reason: 'missing-signature' };
    let understood = false;
    let verifiedHere = false;
    for (const keyId of Object.keys(byServer)) {
      if (!keyId.startsWith(`${ED25519}:`)) continue;
      understood = true;
      const known = lookup(serverName, keyId);
      if (!known) continue;
      if (options?.validAt !== undefined && known.validUntilTs !== undefined && known.validUntilTs < options.validAt) continue;
      const signature = byServer[keyId];
      bytes ??= signedBytes(value, options);
      if (typeof signature !== 'string' || !verifySignatureBytes(bytes, signature, known.key)) {
        return { ok: false, serverName, reason: 'bad-signature', keyId };
      }
      verifiedHere = true;
      verified.push({ serverName, keyId });
    }
    if (!understood) return { ok: false, serverName, reason: 'unsupported-algorithm' };
    if (!verifiedHere) return { ok: false, serverName, reason: 'unknown-key' };
  }
  return { ok: true, verified };
}
