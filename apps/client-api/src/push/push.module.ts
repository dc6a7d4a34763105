import { Module } from '@nestjs/common';
import { NotificationsController } from './notifications.controller';
import { PushRulesController } from './push-rules.controller';
import { PushersController } from './pushers.controller';
import { PUSH_STORES_PROVIDER } from './push.stores';

/**
 * Push of the Client-Server API (issue 4): the push rules API, pushers and
 * GET /notifications. The evaluation and the HTTP pusher run in the push
 * gateway (apps/push-gateway); the /sync counts are
 * UnreadNotificationsSyncSection (push-sync-section.ts), listed in
 * sync/sync-section-list.ts. Shared stores: libs/push.
 */
@Module({
  controllers: [PushRulesController, PushersController, NotificationsController],
  providers: [PUSH_STORES_PROVIDER],
})
export class PushModule {}
