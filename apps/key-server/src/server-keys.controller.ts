import { Controller, Get, Inject } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { buildServerKeys, type ServerKeys } from '@atrium/matrix';
import { CONFIG, SIGNING_KEY, type SigningKey } from '@atrium/platform';

/**
 * Publishing keys. Spec: server-server-api "Publishing Keys" and
 * data/api/server-server/keys_server.yaml with definitions/keys.yaml.
 * `verify_keys` sign requests and events; `old_verify_keys` (from the config
 * after a rotation) only let others check events signed before it.
 */
@Controller('_matrix/key/v2')
export class ServerKeysController {
  private cached: { response: ServerKeys; refreshAt: number } | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(SIGNING_KEY) private readonly signingKey: SigningKey,
  ) {}

  /**
   * The signed object is cached and re-signed when half its validity has gone,
   * so a busy notary-facing endpoint does not sign on every request while what
   * it serves never has less than half the validity left.
   */
  @Get('server')
  serverKeys(): ServerKeys {
    const now = Date.now();
    if (!this.cached || now >= this.cached.refreshAt) {
      const validity = this.config.key_validity_ms;
      const response = buildServerKeys({
        serverName: this.config.server_name,
        signingKeys: [this.signingKey],
        oldVerifyKeys: this.config.old_signing_keys,
        validUntilTs: now + validity,
      });
      this.cached = { response, refreshAt: now + validity / 2 };
    }
    return this.cached.response;
  }

  /** The deprecated `/server/{keyID}` form answers the same as `/server` (keys_server.yaml kept it). */
  @Get('server/:keyId')
  serverKeysById(): ServerKeys {
    return this.serverKeys();
  }
}
