/**
 * The signature check of a third-party invite (auth rules, `m.room.member`
 * invite with `third_party_invite`, sub-rule 7): "If any signature in `signed`
 * matches any public key in the `m.room.third_party_invite` event, allow. The
 * public keys are in `content` of `m.room.third_party_invite` as: 1. A single
 * public key in the `public_key` property. 2. A list of public keys in the
 * `public_keys` property."
 *
 * `signed` is a signed JSON object (appendices.md "Signing JSON"): its
 * signatures cover the canonical JSON of the object without `signatures` and
 * `unsigned`, and the keys are Ed25519 public keys in unpadded base64
 * (client-server m.room.third_party_invite: "`public_key`: A base64-encoded
 * ed25519 key"; identity servers may use URL-safe base64, which Node's base64
 * decoder also reads).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { JsonObject, JsonValue } from '../events/pdu';

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Canonical JSON (appendices.md "Canonical JSON"): keys sorted by code point,
 * no insignificant whitespace, UTF-8. JSON.stringify already writes the
 * shortest escapes the grammar asks for; only the key order needs doing.
 * (Kept local so that event-auth does not wait on the signing module; the
 * two must agree, and the tests check a signature made the ordinary way.)
 */
function byCodePoint(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i].codePointAt(0) as number) - (y[i].codePointAt(0) as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The Ed25519 public keys an m.room.third_party_invite event offers. */
export function thirdPartyInvitePublicKeys(content: JsonObject): string[] {
  const keys: string[] = [];
  const single = content['public_key'];
  if (typeof single === 'string') keys.push(single);
  const list = content['public_keys'];
  if (Array.isArray(list)) {
    for (const entry of list) {
      if (isObject(entry) && typeof entry['public_key'] === 'string') keys.push(entry['public_key']);
    }
  }
  return keys;
}

function ed25519Key(base64: string): KeyObject | undefined {
  const raw = Buffer.from(base64, 'base64');
  if (raw.length !== 32) return undefined;
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** True when some signature in `signed.signatures` verifies under one of `publicKeys`. */
export function signedMatchesAnyKey(signed: JsonObject, publicKeys: readonly string[]): boolean {
  const signatures = signed['signatures'];
  if (!isObject(signatures)) return false;
  const unsignedCopy: JsonObject = { ...signed };
  delete unsignedCopy['signatures'];
  delete unsignedCopy['unsigned'];
  const message = Buffer.from(canonicalJson(unsignedCopy), 'utf8');

  const keys = publicKeys.map(ed25519Key).filter((key): key is KeyObject => key !== undefined);
  for (const byServer of Object.values(signatures)) {
    if (!isObject(byServer)) continue;
    for (const signature of Object.values(byServer)) {
      if (typeof signature !== 'string') continue;
      const bytes = Buffer.from(signature, 'base64');
      if (bytes.length !== 64) continue;
      for (const key of keys) {
        if (verify(null, message, key, bytes)) return true;
      }
    }
  }
  return false;
}
