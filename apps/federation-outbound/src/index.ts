export { FederationOutboundModule, FederationOutboundService } from './federation-outbound.module';
export { FederationSender, MAX_PDUS_PER_TXN, MAX_EDUS_PER_TXN, CATCH_UP_THRESHOLD, transactionId } from './federation-sender';
export { OutboundStore } from './outbound-store';
