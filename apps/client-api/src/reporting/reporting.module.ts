import { Module } from '@nestjs/common';
import { DOCUMENT_STORE } from '@atrium/platform';
import { REPORT_STORE, ReportStore } from '@atrium/relations';
import type { DocumentStore } from '@atrium/storage';
import { RoomsModule } from '../rooms/rooms.module';
import { ReportingController } from './reporting.controller';

/** Reporting content (issue 4): event, room and user reports, stored for administrators (libs/relations ReportStore). */
@Module({
  imports: [RoomsModule],
  controllers: [ReportingController],
  providers: [{ provide: REPORT_STORE, useFactory: (store: DocumentStore) => ReportStore.open(store), inject: [DOCUMENT_STORE] }],
  exports: [REPORT_STORE],
})
export class ReportingModule {}
