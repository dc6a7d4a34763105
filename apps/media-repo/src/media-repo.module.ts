import { Module } from '@nestjs/common';

/**
 * the media repository: /_matrix/media/** and /_matrix/client/v1/media/** (arrives with the media work).
 * Today the process runs the platform only (health, readiness, metrics), so
 * deployments, probes and scaling can be set up before its features land.
 */
@Module({})
export class MediaRepoModule {}
