/**
 * A synthetic homeserver for federation benchmarks: it signs its own requests
 * and PDUs, so a benchmark can drive a real server through its federation API.
 * Spec: server-server-api "Request Authentication" and "Joining Rooms".
 */
import { buildPdu, getRoomVersion, signPdu, signRequest, toRoomEvent, type JsonObject, type Pdu, type RoomEvent, type RoomVersion, type SigningKey } from '@atrium/matrix';
import { httpsJson, type TestCa } from '@atrium/test-servers';

/** What signs: the synthetic server's name and key. */
export interface SyntheticSigner {
  name: string;
  key: SigningKey;
}

/** The server under test, as its federation API is reached. */
export interface FederationTarget {
  serverName: string;
  federationUrl?: string;
}

/** One X-Matrix-signed request; throws on any status but 200. */
export async function signedFederationRequest(
  target: FederationTarget,
  ca: TestCa,
  signer: SyntheticSigner,
  method: 'GET' | 'PUT',
  uri: string,
  body?: JsonObject,
  timeoutMs = 120_000,
): Promise<Record<string, unknown>> {
  if (!target.federationUrl) throw new Error(`${target.serverName} serves no federation URL`);
  const authorization = signRequest({ method, uri, origin: signer.name, destination: target.serverName, content: body }, signer.key);
  const res = await httpsJson(`${target.federationUrl}${uri}`, { method, headers: { Authorization: authorization }, body, caPath: ca.certPath, timeoutMs });
  if (res.status !== 200) throw new Error(`${method} ${uri}: ${res.status} ${res.text.slice(0, 300)}`);
  return res.json;
}

export interface FederatedJoin {
  version: RoomVersion;
  join: RoomEvent;
  /** The send_join answer (state, auth_chain…). */
  answer: Record<string, unknown>;
}

/** `userId` (of the signer's server) joins `roomId` through make_join then send_join v2. */
export async function joinThroughFederation(
  target: FederationTarget,
  ca: TestCa,
  signer: SyntheticSigner,
  roomId: string,
  userId: string,
  options: { omitMembers?: boolean; timeoutMs?: number } = {},
): Promise<FederatedJoin> {
  const enc = encodeURIComponent;
  const made = await signedFederationRequest(target, ca, signer, 'GET', `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(userId)}?ver=10&ver=11&ver=12`, undefined, options.timeoutMs);
  const version = getRoomVersion(String(made['room_version']));
  if (!version) throw new Error(`unknown room version ${String(made['room_version'])}`);
  const template = made['event'] as JsonObject;
  const pdu: Pdu = signPdu(
    buildPdu(
      {
        room_id: roomId,
        sender: userId,
        type: 'm.room.member',
        state_key: userId,
        content: { membership: 'join' },
        origin_server_ts: Date.now(),
        depth: template['depth'] as number,
        prev_events: template['prev_events'] as string[],
        auth_events: template['auth_events'] as string[],
      },
      version,
    ),
    version,
    signer.name,
    signer.key,
  );
  const join = toRoomEvent(pdu, version);
  const query = options.omitMembers ? '?omit_members=true' : '';
  const answer = await signedFederationRequest(target, ca, signer, 'PUT', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(join.event_id)}${query}`, pdu as unknown as JsonObject, options.timeoutMs);
  return { version, join, answer };
}
