import { Module } from '@nestjs/common';
import { PushConsumer } from './push-consumer';

/**
 * Push rule evaluation, notification counts and HTTP pushers
 * (ARCHITECTURE.md "Push"): PushConsumer reads the room output log, records
 * notifications per local member and posts to their pushers. The stores and
 * the evaluation it shares with client-api (push rules API, /notifications,
 * /sync counts) are in libs/push.
 */
@Module({ providers: [PushConsumer] })
export class PushGatewayModule {}
