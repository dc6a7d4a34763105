export { FederationInboundModule } from './federation-inbound.module';
