import { Controller, Get, Inject, Injectable } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { buildServerKeys, type ServerKeys } from '@atrium/matrix';
import { CONFIG, SIGNING_KEY, type SigningKey } from '@atrium/platform';

/**
 * Our signed key response. Spec: server-server-api "Publishing Keys" and
 * data/api/server-server/keys_server.yaml with definitions/keys.yaml.
 * `verify_keys` sign requests and events; `old_verify_keys` (config
 * `old_signing_keys`, written by the `rotate-key` command) "are only valid
 * for signing events", each with the `expired_ts` after which it was not used.
 */
@Injectable()
export class OwnServerKeys {
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
  current(): ServerKeys {
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
}

@Controller('_matrix/key/v2')
export class ServerKeysController {
  constructor(private readonly keys: OwnServerKeys) {}

  @Get('server')
  serverKeys(): ServerKeys {
    return this.keys.current();
  }

  /** The deprecated `/server/{keyID}` form answers the same as `/server` (keys_server.yaml kept it). */
  @Get('server/:keyId')
  serverKeysById(): ServerKeys {
    return this.keys.current();
  }
}
