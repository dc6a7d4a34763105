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
import type { KeyObject } from 'node:crypto';
import { encodeBase64, tryDecodeBase64, tryDecodeBase64Url } from '../base64';
import { verifyKeyFromBase64 } from '../signing/keys';
import { signedBytes, verifySignatureBytes } from '../signing/sign-json';
import type { JsonObject, JsonValue } from '../events/pdu';

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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

/** The key for unpadded Base64 in either alphabet (identity servers may send URL-safe). */
function ed25519Key(text: string): KeyObject | undefined {
  const raw = tryDecodeBase64(text) ?? tryDecodeBase64Url(text);
  return raw?.length === 32 ? verifyKeyFromBase64(encodeBase64(raw)) : undefined;
}

/** True when some signature in `signed.signatures` verifies under one of `publicKeys`. */
export function signedMatchesAnyKey(signed: JsonObject, publicKeys: readonly string[]): boolean {
  const signatures = signed['signatures'];
  if (!isObject(signatures)) return false;
  let message: Buffer;
  try {
    message = signedBytes(signed);
  } catch {
    return false; // not encodable as canonical JSON, so nothing can have signed it
  }

  const keys = publicKeys.map(ed25519Key).filter((key): key is KeyObject => key !== undefined);
  for (const byServer of Object.values(signatures)) {
    if (!isObject(byServer)) continue;
    for (const signature of Object.values(byServer)) {
      if (typeof signature !== 'string') continue;
      for (const key of keys) {
        if (verifySignatureBytes(message, signature, key)) return true;
      }
    }
  }
  return false;
}
