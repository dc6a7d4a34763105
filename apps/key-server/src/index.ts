export { KeyServerModule } from './key-server.module';
