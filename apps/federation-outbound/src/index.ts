export { FederationOutboundModule } from './federation-outbound.module';
