export * from './stream-allocator';
export * from './room-store';
export * from './client-event';
