/**
 * Signing PDUs and checking the hashes and signatures of received ones.
 * Spec: content/server-server-api.md "Signing Events", "Adding hashes and
 * signatures to outgoing events", "Validating hashes and signatures on
 * received events"; content/rooms/fragments/v5-signing-requirements.md; the
 * `join_authorised_via_users_server` rule of rooms v8+ (content/rooms/v8.md
 * "Authorization rules", m.room.member 2.1).
 */
import { encodeBase64 } from '../base64';
import { domainOfId } from '../identifiers';
import {
  checkSignatures,
  signJson,
  type JsonSigner,
  type SignatureCheckResult,
  type VerifyKeyLookup,
} from '../signing/sign-json';
import {
  checkContentHash,
  contentHash,
  redactedForHashing,
  resolveRoomVersion,
  type PduLike,
  type RoomVersionInput,
} from './event-hashes';
import type { JsonObject, Pdu } from './pdu';

/** A PDU before hashing and signing: what buildPdu returns. */
export type UnsignedPdu = { [K in keyof Pdu as K extends 'hashes' | 'signatures' ? never : K]: Pdu[K] } & Partial<
  Pick<Pdu, 'hashes' | 'signatures'>
>;

/**
 * Hashes and signs a PDU as `serverName` ("Adding hashes and signatures to
 * outgoing events"): the content hash goes in `hashes.sha256`, the redacted
 * event is signed, and the signature is copied back. Existing signatures are
 * kept. Returns a new PDU; the input is not modified.
 */
export function signPdu<T extends UnsignedPdu>(
  pdu: T,
  version: RoomVersionInput,
  serverName: string,
  key: JsonSigner,
): T & Pdu {
  const v = resolveRoomVersion(version);
  const hashed = { ...pdu, hashes: { ...(pdu.hashes ?? {}), sha256: encodeBase64(contentHash(pdu as Pdu, v)) } } as T & Pdu;
  const redacted = redactedForHashing(hashed, v);
  const signed = signJson(redacted, serverName, key, { strict: v.strictCanonicalJson });
  return { ...hashed, signatures: signed.signatures };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The servers whose signatures a received PDU needs ("Validating hashes and
 * signatures on received events"):
 * - the server of the `sender`, unless the event is a third-party invite
 *   (an `m.room.member` invite with `content.third_party_invite`), which "the
 *   server which actually sends the event may be a different server" sends;
 * - rooms v1–v2: also the server in the `event_id`, if it differs;
 * - rooms v8+: for an `m.room.member` event with
 *   `content.join_authorised_via_users_server`, the server of that user (auth
 *   rule: "If the event is not validly signed by the homeserver of the user ID
 *   denoted by the key, reject").
 * Returned without duplicates, in that order.
 */
export function requiredSigners(pdu: PduLike, version: RoomVersionInput): string[] {
  const v = resolveRoomVersion(version);
  const servers = new Set<string>();
  const content = isObject(pdu.content) ? pdu.content : {};
  const isThirdPartyInvite =
    pdu.type === 'm.room.member' && content['membership'] === 'invite' && content['third_party_invite'] !== undefined;
  if (!isThirdPartyInvite) {
    const senderServer = typeof pdu.sender === 'string' ? domainOfId(pdu.sender) : undefined;
    if (senderServer !== undefined) servers.add(senderServer);
  }
  if (v.eventIdFormat === 'explicit' && typeof pdu.event_id === 'string') {
    const eventServer = domainOfId(pdu.event_id);
    if (eventServer !== undefined) servers.add(eventServer);
  }
  if (v.restrictedJoin && pdu.type === 'm.room.member') {
    const authoriser = content['join_authorised_via_users_server'];
    if (typeof authoriser === 'string') {
      const authoriserServer = domainOfId(authoriser);
      if (authoriserServer !== undefined) servers.add(authoriserServer);
    }
  }
  return [...servers];
}

export interface VerifyPduOptions {
  /** Servers to require instead of requiredSigners(pdu, version). */
  requiredServers?: Iterable<string>;
}

/**
 * Checks the signatures of a received PDU: the event is redacted and checked
 * for a signature from each required server ("this step should succeed
 * whether we have been sent the full event or a redacted copy"). From room
 * version 5, keys whose validity ended before the event's `origin_server_ts`
 * are skipped (v5-signing-requirements.md); the lookup should already cap a
 * key's `valid_until_ts` at 7 days after it was fetched.
 */
export function verifyPduSignatures(
  pdu: PduLike,
  version: RoomVersionInput,
  lookup: VerifyKeyLookup,
  options?: VerifyPduOptions,
): SignatureCheckResult {
  const v = resolveRoomVersion(version);
  const redacted = redactedForHashing(pdu, v);
  return checkSignatures(redacted, options?.requiredServers ?? requiredSigners(pdu, v), lookup, {
    strict: v.strictCanonicalJson,
    validAt: v.enforceKeyValidity && typeof pdu.origin_server_ts === 'number' ? pdu.origin_server_ts : undefined,
  });
}

export type PduCheckResult<T extends PduLike> =
  /** Signatures and content hash are good: use the event as received. */
  | { outcome: 'accept'; event: T }
  /**
   * Signatures are good but the content hash is not: "use the redacted copy
   * it calculated rather than the full copy it received".
   */
  | { outcome: 'redact'; event: T }
  /** Signatures fail: the event is dropped. */
  | { outcome: 'reject'; signatures: Extract<SignatureCheckResult, { ok: false }> };

/**
 * The whole check of server-server-api.md "Validating hashes and signatures
 * on received events": signatures first, then the content hash.
 */
export function checkPduHashesAndSignatures<T extends PduLike>(
  pdu: T,
  version: RoomVersionInput,
  lookup: VerifyKeyLookup,
  options?: VerifyPduOptions,
): PduCheckResult<T> {
  const v = resolveRoomVersion(version);
  const signatures = verifyPduSignatures(pdu, v, lookup, options);
  if (!signatures.ok) return { outcome: 'reject', signatures };
  if (checkContentHash(pdu, v)) return { outcome: 'accept', event: pdu };
  // Keep the local fields (event_id, derived room_id) a RoomEvent carries.
  const redacted = redactedForHashing(pdu, v) as unknown as T;
  const local: Record<string, unknown> = {};
  if (pdu.event_id !== undefined) local['event_id'] = pdu.event_id;
  if (pdu.room_id !== undefined) local['room_id'] = pdu.room_id;
  return { outcome: 'redact', event: { ...redacted, ...local } as T };
}
