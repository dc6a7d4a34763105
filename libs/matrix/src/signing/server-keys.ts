/**
 * Server key objects: the body of `GET /_matrix/key/v2/server`.
 * Spec: content/server-server-api.md "Publishing Keys" and
 * data/api/server-server/definitions/keys.yaml.
 */
import type { JsonObject } from '../events/pdu';
import { ED25519, isValidKeyVersion, parseKeyId, verifyKeyFromBase64, type SigningKey } from './keys';
import { checkSignatures, signJson, type SignatureCheckFailure, type Signatures } from './sign-json';

export interface ServerKeys {
  server_name: string;
  verify_keys: Record<string, { key: string }>;
  old_verify_keys: Record<string, { key: string; expired_ts: number }>;
  valid_until_ts: number;
  signatures: Signatures;
}

export interface BuildServerKeysOptions {
  serverName: string;
  /** Current keys: published in `verify_keys`, and each signs the response. */
  signingKeys: readonly SigningKey[];
  /** Retired keys, "only valid for signing events" (server-server-api.md "Publishing Keys"). */
  oldVerifyKeys?: Record<string, { key: string; expired_ts: number }>;
  /** When the list should be refreshed (ms). Receivers use at most 7 days from now (v5-signing-requirements.md). */
  validUntilTs: number;
}

/** Builds and signs the `/_matrix/key/v2/server` response ("signed using the verify_keys"). */
export function buildServerKeys(options: BuildServerKeysOptions): ServerKeys {
  if (options.signingKeys.length === 0) throw new Error('a server key response needs at least one signing key');
  const verifyKeys: Record<string, { key: string }> = {};
  for (const key of options.signingKeys) verifyKeys[key.keyId] = { key: key.publicKeyBase64 };
  let body: ServerKeys = {
    server_name: options.serverName,
    verify_keys: verifyKeys,
    old_verify_keys: { ...(options.oldVerifyKeys ?? {}) },
    valid_until_ts: options.validUntilTs,
    signatures: {},
  };
  for (const key of options.signingKeys) body = signJson(body, options.serverName, key);
  return body;
}

/** A server's keys as read from a verified key response. */
export interface VerifiedServerKeys {
  serverName: string;
  validUntilTs: number;
  /** Key ID → public key (unpadded Base64) and the response's `valid_until_ts`. */
  verifyKeys: Record<string, { key: string; validUntilTs: number }>;
  /** Key ID → public key and `expired_ts`. */
  oldVerifyKeys: Record<string, { key: string; expiredTs: number }>;
}

export type ServerKeysResult =
  | { ok: true; keys: VerifiedServerKeys }
  | { ok: false; reason: 'malformed' | 'wrong-server' | SignatureCheckFailure; detail: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPublicKey(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    verifyKeyFromBase64(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Validates a `/_matrix/key/v2/server` response (or one server's entry of a
 * notary `/query` response) for `expectedServerName`: the required fields and
 * their types, well-formed Ed25519 keys, and the server's own signature by its
 * `verify_keys` (every such signature must verify, at least one must exist).
 * Notary signatures, if any, are the caller's to check with checkSignatures.
 */
export function verifyServerKeys(response: unknown, expectedServerName: string): ServerKeysResult {
  const malformed = (detail: string): ServerKeysResult => ({ ok: false, reason: 'malformed', detail });
  if (!isRecord(response)) return malformed('not an object');
  const { server_name: serverName, verify_keys: verifyKeys, old_verify_keys: oldVerifyKeys, valid_until_ts: validUntilTs } = response;
  if (typeof serverName !== 'string') return malformed('server_name is not a string');
  if (serverName !== expectedServerName) {
    return { ok: false, reason: 'wrong-server', detail: `keys are for ${serverName}, not ${expectedServerName}` };
  }
  if (typeof validUntilTs !== 'number' || !Number.isInteger(validUntilTs)) return malformed('valid_until_ts is not an integer');
  if (!isRecord(verifyKeys)) return malformed('verify_keys is not an object');
  if (oldVerifyKeys !== undefined && !isRecord(oldVerifyKeys)) return malformed('old_verify_keys is not an object');

  const keys: VerifiedServerKeys = { serverName, validUntilTs, verifyKeys: {}, oldVerifyKeys: {} };
  for (const [keyId, entry] of Object.entries(verifyKeys)) {
    const parsed = parseKeyId(keyId);
    if (!parsed || !isValidKeyVersion(parsed.version)) return malformed(`invalid key ID ${keyId}`);
    if (parsed.algorithm !== ED25519) continue; // algorithms we do not understand are ignored
    if (!isRecord(entry) || !isPublicKey(entry['key'])) return malformed(`verify_keys.${keyId}.key is not an Ed25519 key`);
    keys.verifyKeys[keyId] = { key: entry['key'], validUntilTs };
  }
  for (const [keyId, entry] of Object.entries(oldVerifyKeys ?? {})) {
    const parsed = parseKeyId(keyId);
    if (!parsed || !isValidKeyVersion(parsed.version)) return malformed(`invalid key ID ${keyId}`);
    if (parsed.algorithm !== ED25519) continue;
    if (!isRecord(entry) || !isPublicKey(entry['key'])) return malformed(`old_verify_keys.${keyId}.key is not an Ed25519 key`);
    const expiredTs = entry['expired_ts'];
    if (typeof expiredTs !== 'number' || !Number.isInteger(expiredTs)) return malformed(`old_verify_keys.${keyId}.expired_ts is not an integer`);
    keys.oldVerifyKeys[keyId] = { key: entry['key'], expiredTs };
  }

  const check = checkSignatures(response as JsonObject, [serverName], (_server, keyId) => {
    const own = keys.verifyKeys[keyId];
    return own ? { key: own.key } : undefined;
  });
  if (!check.ok) return { ok: false, reason: check.reason, detail: `self-signature: ${check.reason}${check.keyId ? ` (${check.keyId})` : ''}` };
  return { ok: true, keys };
}
