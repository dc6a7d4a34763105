import { Module } from '@nestjs/common';
import { RoomsModule } from '../rooms/rooms.module';
import { RelationsController } from './relations.controller';
import { RelationsService } from './relations.service';
import { ThreadsController } from './threads.controller';

/**
 * Event relationships of the Client-Server API (issue 4): GET /relations and
 * GET /threads, and RelationsService (readers, visibility, events with
 * bundled aggregations) for the search module. The aggregation itself is
 * libs/relations `bundleAggregations`, which /event, /messages, /context and
 * /sync call too.
 */
@Module({
  imports: [RoomsModule],
  controllers: [RelationsController, ThreadsController],
  providers: [RelationsService],
  exports: [RelationsService],
})
export class RelationsModule {}
