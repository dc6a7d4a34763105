/**
 * The room server's bus API: subjects and message shapes other services use
 * to ask it for work. Every write to a room goes through the room server, the
 * single writer of each room (ARCHITECTURE.md "Rules that keep the cluster correct").
 */
export const ROOM_SERVER_SUBJECTS = {
  /** Make a user leave every room they are joined to, invited to or knocking on (account deactivation). */
  leaveAllRooms: 'roomserver.user.leave_all_rooms',
} as const;

export interface LeaveAllRoomsRequest {
  user_id: string;
  reason?: string;
}

export interface LeaveAllRoomsResponse {
  /** Rooms the user was made to leave. */
  left_rooms: string[];
}
