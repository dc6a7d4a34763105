export * from './streams';
export * from './account-data-store';
export * from './profile-store';
export * from './presence-store';
export * from './to-device-store';
export * from './invite-permission';
