import { isValidRoomId } from '@atrium/matrix';
import { Errors, MatrixError, type Requester } from '@atrium/http';

/**
 * Account data, tags, presence updates and profile changes: "The access token
 * must be authorised to make requests for this user ID" — only the user
 * themself. Every such endpoint answers 403 M_FORBIDDEN for another user.
 */
export function requireSelf(requester: Requester, userId: string, what: string): void {
  if (requester.userId !== userId) throw Errors.forbidden(`Cannot ${what} for other users`);
}

/** account-data.yaml: "the given `roomID` is not a valid room ID (errcode `M_INVALID_PARAM`)". */
export function requireRoomId(roomId: string): void {
  if (!isValidRoomId(roomId)) throw Errors.invalidParam(`${roomId} is not a valid room ID`);
}

/** 405 with a Matrix errcode (account-data.yaml uses M_BAD_JSON for server-managed types). */
export function methodNotAllowed(errcode: string, message: string): MatrixError {
  return new MatrixError(405, errcode, message);
}

export function byteLength(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}
