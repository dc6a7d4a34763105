import { FederationClientModule } from '@atrium/federation-client';
import { runService } from '@atrium/platform';
import { FederationOutboundModule } from './federation-outbound.module';

void runService('federation-outbound', [FederationClientModule, FederationOutboundModule]);
