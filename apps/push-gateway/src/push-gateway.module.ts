import { Module } from '@nestjs/common';

/**
 * push rule evaluation, notification counts and HTTP pushers (arrive with the push work).
 * Today the process runs the platform only (health, readiness, metrics), so
 * deployments, probes and scaling can be set up before its features land.
 */
@Module({})
export class PushGatewayModule {}
