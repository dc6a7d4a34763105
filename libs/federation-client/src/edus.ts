/**
 * EDUs between services: other modules hand EDUs to federation-outbound, and
 * federation-inbound hands received EDUs to their owners.
 * Spec: server-server-api "EDUs", "Typing Notifications", "Receipts",
 * "Presence", "Device Management", "Send-to-device messaging".
 */
import type { JsonObject } from '@atrium/matrix';

/** Durable bus stream and subject of EDUs to send (at-least-once: receivers dedupe where the spec lets them). */
export const OUTGOING_EDU_STREAM = 'FEDERATION_EDUS_OUT';
export const OUTGOING_EDU_SUBJECT = 'federation.edu.out';

/** An EDU a local module wants delivered. */
export interface OutgoingEdu {
  edu_type: string;
  content: JsonObject;
  /**
   * Where to send it: explicit server names, or every other server with a
   * joined member in `room_id` (typing, receipts), or every server sharing a
   * room with `user_id` (presence, device lists, signing key updates).
   */
  destinations?: string[];
  room_id?: string;
  user_id?: string;
}

/** An EDU received in a /send transaction, after the origin was authenticated. */
export interface IncomingEdu {
  origin: string;
  edu_type: string;
  content: JsonObject;
}

/** Nest token of the handler federation-inbound calls for each received EDU. */
export const INCOMING_EDU_HANDLER = Symbol('INCOMING_EDU_HANDLER');

export interface IncomingEduHandler {
  /** Must not throw for bad content from the remote: log and drop (EDUs have no per-item result). */
  handle(edu: IncomingEdu): Promise<void>;
}

/** Nest tokens of the transport (provided by FederationClientModule). */
export const FEDERATION_CLIENT = Symbol('FEDERATION_CLIENT');
export const KEY_RING = Symbol('KEY_RING');
export const SERVER_RESOLVER = Symbol('SERVER_RESOLVER');

/**
 * The bus as producers of EDUs need it (structural, so this library does not
 * depend on @atrium/bus at runtime).
 */
export interface EduBus {
  ensureStream(spec: { name: string; subjects: string[] }): Promise<void>;
  publish<T>(subject: string, data: T): Promise<number>;
}

const eduStreamEnsured = new WeakSet<object>();

/**
 * Hands an EDU to federation-outbound over OUTGOING_EDU_STREAM (durable:
 * queued even while federation-outbound is down). Callers publish after
 * their own write succeeded; federation-outbound drops an EDU with no
 * remote destination, so callers need not check for remote servers.
 */
export async function publishOutgoingEdu(bus: EduBus, edu: OutgoingEdu): Promise<void> {
  if (!eduStreamEnsured.has(bus)) {
    await bus.ensureStream({ name: OUTGOING_EDU_STREAM, subjects: [OUTGOING_EDU_SUBJECT] });
    eduStreamEnsured.add(bus);
  }
  await bus.publish<OutgoingEdu>(OUTGOING_EDU_SUBJECT, edu);
}

/**
 * Notified (bus.notify, fan-out) by federation-inbound when a server sent us
 * an authenticated request: federation-outbound then retries that server at
 * once instead of at the end of its backoff ("catch-up" when a destination
 * comes back). Losing one is harmless: the backoff still runs out.
 */
export const FEDERATION_ORIGIN_SEEN_SUBJECT = 'federation.origin.seen';

export interface FederationOriginSeen {
  server_name: string;
}
