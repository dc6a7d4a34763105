import { Module } from '@nestjs/common';

/**
 * per-destination transaction queues fed by the room output stream (arrive with the federation work).
 * Today the process runs the platform only (health, readiness, metrics), so
 * deployments, probes and scaling can be set up before its features land.
 */
@Module({})
export class FederationOutboundModule {}
