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
