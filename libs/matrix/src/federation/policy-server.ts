/**
 * Policy Servers (v1.18): server-server-api "Policy Servers"; the
 * `m.room.policy` state event (client-server-api modules/policy_servers.md,
 * event-schemas m.room.policy.yaml); room_policy.yaml POST /_matrix/policy/v1/sign.
 *
 * A room names a Policy Server in `m.room.policy`; while it does (and that
 * server has a joined user), every server in the room has each event signed
 * by it before sending, and soft-fails received events its signature does
 * not cover. This file holds the pure rules; the room server does the asking.
 */
import { redactedForHashing, resolveRoomVersion, type PduLike, type RoomVersionInput } from '../events/event-hashes';
import { verifyJsonSignature } from '../signing/sign-json';

/** "The Key ID for the ed25519 key in m.room.policy is *always* ed25519:policy_server." */
export const POLICY_SERVER_KEY_ID = 'ed25519:policy_server';
export const POLICY_EVENT_TYPE = 'm.room.policy';
/** room_policy.yaml, under the federation's `/_matrix/policy/v1` prefix. */
export const POLICY_SIGN_PATH = '/_matrix/policy/v1/sign';

/** The Policy Server an `m.room.policy` content names. */
export interface PolicyServerConfig {
  via: string;
  /** Unpadded Base64 Ed25519 public key. */
  ed25519: string;
}

/**
 * The Policy Server of valid `m.room.policy` content: "content contains at
 * least: a string value for `via`; an object value for `public_keys`
 * containing at least a string value for `ed25519`". Null otherwise (the
 * room does not use one). Whether `via` has a joined user is the caller's
 * second check ("Determining if a Policy Server is enabled in a room").
 */
export function policyServerOf(content: unknown): PolicyServerConfig | null {
  if (typeof content !== 'object' || content === null || Array.isArray(content)) return null;
  const { via, public_keys: keys } = content as Record<string, unknown>;
  if (typeof via !== 'string' || via === '') return null;
  if (typeof keys !== 'object' || keys === null || Array.isArray(keys)) return null;
  const ed25519 = (keys as Record<string, unknown>)['ed25519'];
  return typeof ed25519 === 'string' ? { via, ed25519 } : null;
}

/**
 * Whether an event needs the Policy Server's signature in a room that uses
 * one: all but the `m.room.policy` state event with an empty state key
 * (sign endpoint: "MUST NOT be called for" it; non-state and other-key
 * m.room.policy events are signed).
 */
export function needsPolicySignature(event: { type: string; state_key?: string | null }): boolean {
  return !(event.type === POLICY_EVENT_TYPE && event.state_key === '');
}

/**
 * Whether a PDU carries a valid signature of the Policy Server: its
 * signature "appears alongside the normal event signatures, though uses a
 * public key from the room's m.room.policy state event", over the redacted
 * event as any event signature is.
 */
export function hasValidPolicySignature(pdu: PduLike, version: RoomVersionInput, policy: PolicyServerConfig): boolean {
  const v = resolveRoomVersion(version);
  return verifyJsonSignature(redactedForHashing(pdu, v), policy.via, POLICY_SERVER_KEY_ID, policy.ed25519, { strict: v.strictCanonicalJson });
}
