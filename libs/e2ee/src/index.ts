export * from './e2ee-store';
export * from './e2ee-service';
export * from './device-events';
export * from './remote-device-lists';
export * from './remote-keys';
export * from './dehydrated-devices';
