import { Module } from '@nestjs/common';
import { RelationsModule } from '../relations/relations.module';
import { RoomsModule } from '../rooms/rooms.module';
import { SearchController } from './search.controller';
import { SearchService } from './search.service';

/** POST /search (issue 4): room_events over the rooms a user is or was in, matched in code (libs/relations search-text.ts). */
@Module({
  imports: [RoomsModule, RelationsModule],
  controllers: [SearchController],
  providers: [SearchService],
})
export class SearchModule {}
