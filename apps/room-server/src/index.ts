export * from './room-server.api';
export { RoomServerModule } from './room-server.module';
