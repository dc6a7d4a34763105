export * from './stream-allocator';
export * from './room-store';
export * from './state-groups';
export * from './client-event';
export * from './history-visibility';
export * from './sync-wake';

/** Nest injection token for the RoomStore (provided by the modules that use it, over DOCUMENT_STORE). */
export const ROOM_STORE = Symbol('atrium:room-store');
