import { Module } from '@nestjs/common';
import { RoomServerService } from './room-server.service';

/** The single writer of each room: builds, authorises, resolves and persists events. */
@Module({ providers: [RoomServerService] })
export class RoomServerModule {}
