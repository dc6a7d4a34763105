/**
 * The room server's bus API: subjects and message shapes other services use
 * to ask it for work. Every write to a room goes through the room server, the
 * single writer of each room (ARCHITECTURE.md "Rules that keep the cluster correct").
 *
 * Errors: a request that fails for a Matrix reason is answered with a
 * BusRemoteError whose `code` is the Matrix errcode and whose `details` carry
 * the HTTP status (RoomServerErrorDetails); `toMatrixError` turns it back into
 * the MatrixError the client sees.
 */
import { BusRemoteError, BusTimeoutError } from '@atrium/bus';
import { MatrixError } from '@atrium/http';
import type { JsonObject } from '@atrium/matrix';

export const ROOM_SERVER_SUBJECTS = {
  /** Make a user leave every room they are joined to, invited to or knocking on (account deactivation). */
  leaveAllRooms: 'roomserver.user.leave_all_rooms',
  /** Create a room with its initial events (POST /createRoom). */
  createRoom: 'roomserver.room.create',
  /** Send one local event (message, state, membership or redaction) into a room. */
  sendEvent: 'roomserver.room.send',
  /** Upgrade a room to another room version (POST /rooms/{roomId}/upgrade). */
  upgradeRoom: 'roomserver.room.upgrade',
  /** Publish or unpublish a room in the room directory. */
  setVisibility: 'roomserver.room.set_visibility',
} as const;

export interface LeaveAllRoomsRequest {
  user_id: string;
  reason?: string;
}

export interface LeaveAllRoomsResponse {
  /** Rooms the user was made to leave. */
  left_rooms: string[];
}

/** A state event to send: type, state_key, content. */
export interface StateDraft {
  type: string;
  state_key: string;
  content: JsonObject;
}

export interface CreateRoomRequest {
  sender: string;
  room_version: string;
  /** Content of m.room.create before the server's keys (`creator`, `room_version`) are set. */
  creation_content: JsonObject;
  /**
   * The events after m.room.create, in the order the createRoom description
   * lists them (creator's join, power levels, canonical alias, preset,
   * initial_state, name/topic, invites). Each is authorised like any event.
   */
  events: Array<StateDraft>;
  /** `#local:server` to map to the room before any event is sent (M_ROOM_IN_USE if taken). */
  alias?: string;
  visibility: 'public' | 'private';
}

export interface CreateRoomResponse {
  room_id: string;
}

export interface SendEventRequest {
  room_id: string;
  sender: string;
  type: string;
  /** Present for state events (including m.room.member). */
  state_key?: string;
  content: JsonObject;
  /** For m.room.redaction: the event redacted. */
  redacts?: string;
  /** Client transaction: the same (device, scope, txn_id) gives the same event ID. */
  txn?: { device_id: string; scope: string; txn_id: string };
}

export interface SendEventResponse {
  event_id: string;
  /** Position in the `events` stream (0 when an earlier transaction's event was returned). */
  stream: number;
}

export interface UpgradeRoomRequest {
  room_id: string;
  sender: string;
  new_version: string;
  /** Room versions with privileged creators (v12+): the new room's other creators. */
  additional_creators?: string[];
}

export interface UpgradeRoomResponse {
  replacement_room: string;
}

export interface SetVisibilityRequest {
  room_id: string;
  visibility: 'public' | 'private';
}

/** What the room server puts in `details` of an error it answers with. */
export interface RoomServerErrorDetails {
  status: number;
  extra?: Record<string, unknown>;
}

/** The error a room-server handler throws so the caller can rebuild the MatrixError. */
export function busErrorOf(error: MatrixError): Error & { errcode: string; details: RoomServerErrorDetails } {
  return Object.assign(new Error(error.message), { errcode: error.errcode, details: { status: error.status, extra: error.extra } });
}

/** Turns a failed room-server request into the MatrixError for the client. */
export function toMatrixError(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
  if (error instanceof BusRemoteError) {
    const details = (error.details ?? {}) as Partial<RoomServerErrorDetails>;
    const status = typeof details.status === 'number' ? details.status : 500;
    return new MatrixError(status, error.code, error.message, details.extra ?? {});
  }
  if (error instanceof BusTimeoutError) return new MatrixError(503, 'M_UNKNOWN', 'The room server did not answer in time');
  return new MatrixError(500, 'M_UNKNOWN', 'Internal server error');
}

// ---- federation (docs/federation-design.md) ----

export const ROOM_SERVER_FEDERATION_SUBJECTS = {
  /** PDUs of one room from a /send transaction (or fetched ones): checked in the spec's order and persisted. */
  receivePdus: 'roomserver.federation.receive_pdus',
  /** make_join / make_leave / make_knock: an unsigned membership event template for a remote user. */
  makeMembership: 'roomserver.federation.make_membership',
  /** send_join / send_leave / send_knock: a remote user's signed membership event. */
  sendMembership: 'roomserver.federation.send_membership',
  /** /invite v2: a remote server invites a local user; we sign and store the invite. */
  receiveInvite: 'roomserver.federation.receive_invite',
  /** A local user joins, leaves or knocks on a room through other servers (make_* then send_*). */
  remoteMembership: 'roomserver.federation.remote_membership',
  /** /messages reached the start of local history: backfill from a server in the room (federation/backfill.ts). */
  backfill: 'roomserver.federation.backfill',
} as const;

export interface BackfillRequest {
  room_id: string;
  /** How many events to ask for (backfill.yaml `limit`; capped at 100). */
  limit: number;
}

export interface BackfillResponse {
  /** Events that entered the timeline, at positions below the room's earlier ones. */
  added: number;
}

/** Per-PDU result of /send: absent `error` means accepted (server-server-api "PDU Processing Result"). */
export interface PduResult {
  error?: string;
}

export interface ReceivePdusRequest {
  /** The server that sent the transaction (X-Matrix origin). */
  origin: string;
  room_id: string;
  /** The PDUs as received (wire format, untrusted). */
  pdus: JsonObject[];
}

export interface ReceivePdusResponse {
  /** Event ID → result, for every PDU whose event ID could be computed. */
  pdus: Record<string, PduResult>;
}

export type FederatedMembership = 'join' | 'leave' | 'knock';

export interface MakeMembershipRequest {
  room_id: string;
  user_id: string;
  membership: FederatedMembership;
  /** make_join / make_knock `ver` query values: room versions the remote server supports. */
  supported_versions?: string[];
}

export interface MakeMembershipResponse {
  room_version: string;
  /** The unsigned event template (no hashes, signatures or event_id). */
  event: JsonObject;
}

export interface SendMembershipRequest {
  origin: string;
  room_id: string;
  /** The event ID in the path (checked against the PDU's). */
  event_id: string;
  membership: FederatedMembership;
  pdu: JsonObject;
  /** send_join v2 `omit_members` (MSC3706 partial state); may be ignored (answer members_omitted false). */
  omit_members?: boolean;
}

export interface SendMembershipResponse {
  /** send_join: the resident server's name (joins-v2.yaml `origin`). */
  origin?: string;
  /** send_join: the state before the join, the auth chain, the join event signed by us too. */
  state?: JsonObject[];
  auth_chain?: JsonObject[];
  event?: JsonObject;
  members_omitted?: boolean;
  servers_in_room?: string[];
  /** send_knock: stripped state for the knocking user. */
  knock_room_state?: JsonObject[];
}

export interface ReceiveInviteRequest {
  origin: string;
  room_id: string;
  event_id: string;
  room_version: string;
  event: JsonObject;
  invite_room_state?: JsonObject[];
}

export interface ReceiveInviteResponse {
  /** The invite event with our signature added. */
  event: JsonObject;
}

export interface RemoteMembershipRequest {
  room_id: string;
  user_id: string;
  membership: FederatedMembership;
  /** Servers to try, in order (from the alias lookup, `via`/`server_name`, the invite's sender). */
  servers: string[];
  /** Extra content (reason, displayname…) merged into the template's content. */
  content?: JsonObject;
}

export interface RemoteMembershipResponse {
  event_id: string;
}
