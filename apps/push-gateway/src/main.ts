import { runService } from '@atrium/platform';
import { PushGatewayModule } from './push-gateway.module';

void runService('push-gateway', [PushGatewayModule]);
