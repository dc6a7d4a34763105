import { runService } from '@atrium/platform';
import { FederationOutboundModule } from './federation-outbound.module';

void runService('federation-outbound', [FederationOutboundModule]);
