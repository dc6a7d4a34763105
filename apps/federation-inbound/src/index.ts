export { FederationInboundModule } from './federation-inbound.module';
export { XMatrixGuard, type FederationAuthenticated } from './auth/x-matrix.guard';
export { FederationOrigin } from './origin';
