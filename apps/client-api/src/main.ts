import { runService } from '@atrium/platform';
import { ClientApiModule } from './client-api.module';

// Cluster mode: the Client-Server API as its own process.
void runService('client-api', [ClientApiModule]);
