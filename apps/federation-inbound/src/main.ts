import { runService } from '@atrium/platform';
import { FederationInboundModule } from './federation-inbound.module';

void runService('federation-inbound', [FederationInboundModule]);
