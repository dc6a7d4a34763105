/** Stores of the query endpoints (their own handles, as each module of this app opens its own). */
export const QUERY_ROOM_STORE = Symbol('atrium:federation-query-room-store');
export const QUERY_PROFILE_STORE = Symbol('atrium:federation-query-profile-store');
