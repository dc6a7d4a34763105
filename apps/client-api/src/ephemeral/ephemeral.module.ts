import { Module } from '@nestjs/common';
import { RoomsModule } from '../rooms/rooms.module';
import { EphemeralController } from './ephemeral.controller';
import { EphemeralService } from './ephemeral.service';

/**
 * Typing notifications, receipts and read markers of the Client-Server API
 * (issue 4). State lives in storage through libs/ephemeral, so every
 * client-api replica serves the same; its /sync sections
 * (ephemeral-sync-sections.ts) are listed in sync/sync-section-list.ts.
 */
@Module({
  imports: [RoomsModule],
  controllers: [EphemeralController],
  providers: [EphemeralService],
})
export class EphemeralModule {}
