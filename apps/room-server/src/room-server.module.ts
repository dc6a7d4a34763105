import { Module } from '@nestjs/common';
import { FederationClientModule } from '@atrium/federation-client';
import { RoomServerService } from './room-server.service';

/** The single writer of each room: builds, authorises, resolves and persists events. */
@Module({ imports: [FederationClientModule], providers: [RoomServerService] })
export class RoomServerModule {}
