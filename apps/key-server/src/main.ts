import { runService } from '@atrium/platform';
import { KeyServerModule } from './key-server.module';

void runService('key-server', [KeyServerModule]);
