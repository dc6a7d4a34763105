/** Nest token for the RoomStore the sync module reads (opened over DOCUMENT_STORE; the room server is its writer). */
export const SYNC_ROOM_STORE = Symbol('atrium:sync-room-store');
