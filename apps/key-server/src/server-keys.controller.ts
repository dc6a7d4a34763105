import { Controller, Get, Inject } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { signJson, type JsonObject } from '@atrium/matrix';
import { CONFIG, SIGNING_KEY, type SigningKey } from '@atrium/platform';

export interface ServerKeysResponse extends JsonObject {
  server_name: string;
  valid_until_ts: number;
  verify_keys: { [keyId: string]: { key: string } };
  old_verify_keys: { [keyId: string]: { key: string; expired_ts: number } };
}

/**
 * Publishing keys. Spec: server-server-api "Publishing Keys" and
 * data/api/server-server/keys_server.yaml with definitions/keys.yaml.
 * `verify_keys` sign requests and events; `old_verify_keys` (from the config
 * after a rotation) only let others check events signed before it.
 */
@Controller('_matrix/key/v2')
export class ServerKeysController {
  private cached: { response: ServerKeysResponse; refreshAt: number } | undefined;

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
  serverKeys(): ServerKeysResponse {
    const now = Date.now();
    if (!this.cached || now >= this.cached.refreshAt) {
      const validity = this.config.key_validity_ms;
      const unsigned: ServerKeysResponse = {
        server_name: this.config.server_name,
        valid_until_ts: now + validity,
        verify_keys: { [this.signingKey.keyId]: { key: this.signingKey.publicKeyBase64 } },
        old_verify_keys: { ...this.config.old_signing_keys },
      };
      const response = signJson(unsigned, this.config.server_name, this.signingKey.keyId, this.signingKey.privateKey) as ServerKeysResponse;
      this.cached = { response, refreshAt: now + validity / 2 };
    }
    return this.cached.response;
  }

  /** The deprecated `/server/{keyID}` form answers the same as `/server` (keys_server.yaml kept it). */
  @Get('server/:keyId')
  serverKeysById(): ServerKeysResponse {
    return this.serverKeys();
  }
}
