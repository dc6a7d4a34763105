import { Module } from '@nestjs/common';
import { ServerKeysController } from './server-keys.controller';

/**
 * Server keys (/_matrix/key/v2/**). The notary, the remote key cache and the
 * end-to-end encryption keys arrive with the federation and E2EE work.
 */
@Module({ controllers: [ServerKeysController] })
export class KeyServerModule {}
