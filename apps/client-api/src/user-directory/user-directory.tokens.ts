/** Nest token for the RoomStore the user directory reads (opened over DOCUMENT_STORE; read only). */
export const USER_DIRECTORY_ROOM_STORE = Symbol('atrium:user-directory-room-store');

/** Nest token for the ProfileStore the user directory reads display names and avatars from. */
export const USER_DIRECTORY_PROFILES = Symbol('atrium:user-directory-profiles');
