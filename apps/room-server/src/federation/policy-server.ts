/**
 * This server as a member of rooms that use a Policy Server (server-server-api
 * "Policy Servers", v1.18): it asks the room's Policy Server to sign each
 * local event before sending it, and checks that signature on received
 * events. The rules (which content names a Policy Server, which events need
 * a signature, how one is checked) are in libs/matrix federation/policy-server.ts.
 *
 * What it does not cover: joins made through another server (make_join /
 * send_join), where this server has no current state of the room to read
 * `m.room.policy` from until the join completes.
 */
import { FederationHttpError, type FederationClient } from '@atrium/federation-client';
import { MatrixError } from '@atrium/http';
import {
  domainOfId,
  hasValidPolicySignature,
  needsPolicySignature,
  policyServerOf,
  POLICY_EVENT_TYPE,
  POLICY_SERVER_KEY_ID,
  POLICY_SIGN_PATH,
  stateKey,
  toWirePdu,
  type JsonObject,
  type PolicyServerConfig,
  type RoomEvent,
  type RoomVersion,
} from '@atrium/matrix';
import type { RoomStore } from '@atrium/rooms';

/** How long a send waits for the Policy Server. A client's send fails after it. */
const SIGN_TIMEOUT_MS = 10_000;

export interface PolicyServerOptions {
  serverName: string;
  client?: FederationClient;
  log?: (message: string) => void;
}

export class PolicyServers {
  constructor(
    private readonly rooms: RoomStore,
    private readonly options: PolicyServerOptions,
  ) {}

  /**
   * The room's Policy Server, when it uses one ("Determining if a Policy
   * Server is enabled in a room"): a valid `m.room.policy` with an empty
   * state key in the current state, naming a server with at least one
   * joined user in the room.
   */
  async enabledFor(roomId: string): Promise<PolicyServerConfig | null> {
    const policy = (await this.rooms.currentStateEventsFor(roomId, [[POLICY_EVENT_TYPE, '']])).get(stateKey(POLICY_EVENT_TYPE, ''));
    const config = policyServerOf(policy?.content);
    if (!config) return null;
    const joined = await this.rooms.joinedUsers(roomId);
    return joined.some((userId) => domainOfId(userId) === config.via) ? config : null;
  }

  /**
   * A local event about to be sent, with the Policy Server's signature added
   * when the room uses one. Refused (the event is not sent) when the Policy
   * Server refuses or its signature does not verify: "If the Policy Server
   * returned an error, that error SHOULD be provided to the client verbatim."
   */
  async signLocal(event: RoomEvent, version: RoomVersion): Promise<RoomEvent> {
    if (!needsPolicySignature(event)) return event;
    const policy = await this.enabledFor(event.room_id);
    if (!policy) return event;
    const signed = await this.requestSignature(event, version, policy);
    if (!hasValidPolicySignature(signed, version, policy)) {
      throw new MatrixError(502, 'M_UNKNOWN', `The Policy Server ${policy.via} answered with a signature that does not verify against the room's m.room.policy key`);
    }
    return signed;
  }

  /**
   * A received event: whether the Policy Server recommends it, and the event
   * to store (with a fresh signature when one had to be asked for). "If the
   * Policy Server's signature is invalid or missing, the homeserver SHOULD ask
   * for a new signature"; still without one, the caller soft-fails it.
   */
  async checkReceived(event: RoomEvent, version: RoomVersion): Promise<{ recommended: boolean; event: RoomEvent }> {
    if (!needsPolicySignature(event)) return { recommended: true, event };
    const policy = await this.enabledFor(event.room_id);
    if (!policy || hasValidPolicySignature(event, version, policy)) return { recommended: true, event };
    try {
      const signed = await this.requestSignature(event, version, policy);
      if (hasValidPolicySignature(signed, version, policy)) return { recommended: true, event: signed };
    } catch (err) {
      this.options.log?.(`Policy Server ${policy.via} did not sign ${event.event_id}: ${(err as Error).message}`);
    }
    return { recommended: false, event };
  }

  /** POST /_matrix/policy/v1/sign: "Only the Policy Server's signature is returned"; it is added to the event's signatures. */
  private async requestSignature(event: RoomEvent, version: RoomVersion, policy: PolicyServerConfig): Promise<RoomEvent> {
    const client = this.options.client;
    // This server is not a Policy Server: a room that names it gets no signatures from it.
    if (!client || policy.via === this.options.serverName) {
      throw new MatrixError(400, 'M_FORBIDDEN', `The room's Policy Server ${policy.via} cannot be asked from this server`);
    }
    let answer: JsonObject;
    try {
      answer = await client.request<JsonObject>({ destination: policy.via, method: 'POST', path: POLICY_SIGN_PATH, body: toWirePdu(event, version) as unknown as JsonObject, timeoutMs: SIGN_TIMEOUT_MS });
    } catch (err) {
      if (err instanceof FederationHttpError && err.status >= 400 && err.status < 500) {
        const body = typeof err.body === 'object' && err.body !== null ? (err.body as Record<string, unknown>) : {};
        const message = typeof body['error'] === 'string' ? body['error'] : err.message;
        throw new MatrixError(err.status, err.errcode ?? 'M_FORBIDDEN', message);
      }
      throw new MatrixError(502, 'M_UNKNOWN', `The room's Policy Server ${policy.via} could not be asked: ${(err as Error).message}`);
    }
    const byServer = answer[policy.via];
    const signature = typeof byServer === 'object' && byServer !== null && !Array.isArray(byServer) ? (byServer as Record<string, unknown>)[POLICY_SERVER_KEY_ID] : undefined;
    if (typeof signature !== 'string') throw new MatrixError(502, 'M_UNKNOWN', `The Policy Server ${policy.via} answered without an ${POLICY_SERVER_KEY_ID} signature`);
    // The Policy Server may also be the event's origin: its existing signatures stay ("should be retained").
    const signatures = { ...event.signatures, [policy.via]: { ...(event.signatures?.[policy.via] ?? {}), [POLICY_SERVER_KEY_ID]: signature } };
    return { ...event, signatures };
  }
}
