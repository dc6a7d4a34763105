export * from './e2ee-store';
export * from './e2ee-service';
