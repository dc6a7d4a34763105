export * from './push-rules-store';
export * from './notification-store';
export * from './pusher-store';
export * from './push-evaluator';
export * from './unread-counter';
export * from './push-stores';
