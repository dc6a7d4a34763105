export * from './streams';
export * from './typing-store';
export * from './receipt-store';
export * from './threads';
