import { runService } from '@atrium/platform';
import { RoomServerModule } from './room-server.module';

// Cluster mode: the room server as its own process (serves only /health, /ready, /metrics over HTTP).
void runService('room-server', [RoomServerModule]);
