/**
 * The notary: other servers' keys, countersigned. Spec: server-server-api
 * "Querying Keys Through Another Server" and
 * data/api/server-server/keys_query.yaml (GET /query/{serverName}, POST
 * /query), definitions/keys_query_response.yaml.
 */
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { KEY_RING, type KeyRing } from '@atrium/federation-client';
import { Errors, requireJsonObject } from '@atrium/http';
import { isValidServerName, signJson, type JsonObject } from '@atrium/matrix';
import { CONFIG, SIGNING_KEY, type SigningKey } from '@atrium/platform';
import { OwnServerKeys } from './server-keys.controller';

/** Servers per POST: a bound on the work one request can cause (each may mean an outgoing fetch). */
export const MAX_SERVERS_PER_QUERY = 100;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

@Controller('_matrix/key/v2')
export class NotaryController {
  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(SIGNING_KEY) private readonly signingKey: SigningKey,
    @Inject(KEY_RING) private readonly keyRing: KeyRing,
    private readonly ownKeys: OwnServerKeys,
  ) {}

  /** "If not supplied, the notary server MUST use the current time." */
  @Get('query/:serverName')
  async queryOne(@Param('serverName') serverName: string, @Query('minimum_valid_until_ts') minimum: unknown): Promise<{ server_keys: JsonObject[] }> {
    let minimumValidUntilTs = Date.now();
    if (minimum !== undefined) {
      if (typeof minimum !== 'string' || !/^\d{1,16}$/.test(minimum)) throw Errors.invalidParam('minimum_valid_until_ts must be an integer');
      minimumValidUntilTs = Number(minimum);
    }
    if (!isValidServerName(serverName)) throw Errors.invalidParam(`${JSON.stringify(serverName)} is not a server name`);
    return { server_keys: await this.responsesFor(serverName, minimumValidUntilTs) };
  }

  /**
   * The batch form. Key IDs in the criteria do not narrow the answer ("The
   * notary server may return multiple keys regardless of the Key IDs
   * given"); the largest `minimum_valid_until_ts` asked for a server applies
   * to it. No servers: an empty `server_keys`.
   */
  @Post('query')
  @HttpCode(200)
  async queryMany(@Body() body: unknown): Promise<{ server_keys: JsonObject[] }> {
    const request = requireJsonObject(body);
    const serverKeys = request['server_keys'];
    if (!isRecord(serverKeys)) throw Errors.badJson('server_keys must be an object');
    const servers = Object.entries(serverKeys);
    if (servers.length > MAX_SERVERS_PER_QUERY) throw Errors.invalidParam(`at most ${MAX_SERVERS_PER_QUERY} servers per query`);
    const now = Date.now();
    const wanted: Array<[string, number]> = [];
    for (const [serverName, criteria] of servers) {
      if (!isRecord(criteria)) throw Errors.badJson(`server_keys.${serverName} must be an object`);
      let minimumValidUntilTs = now;
      for (const [keyId, criterion] of Object.entries(criteria)) {
        if (!isRecord(criterion)) throw Errors.badJson(`server_keys.${serverName}.${keyId} must be an object`);
        const ts = criterion['minimum_valid_until_ts'];
        if (ts === undefined) continue;
        if (typeof ts !== 'number' || !Number.isInteger(ts)) throw Errors.badJson('minimum_valid_until_ts must be an integer');
        minimumValidUntilTs = Math.max(minimumValidUntilTs, ts);
      }
      // A name that cannot be a server has no keys: left out, as an unreachable server is.
      if (isValidServerName(serverName)) wanted.push([serverName, minimumValidUntilTs]);
    }
    const answers = await Promise.all(wanted.map(([name, ts]) => this.responsesFor(name, ts)));
    return { server_keys: answers.flat() };
  }

  /**
   * The server's own signed key responses (fetched if none is valid long
   * enough; cached ones when it cannot be reached), each with our signature
   * added ("The notary server must sign the keys returned by the queried
   * server"). Our own keys come straight from /key/v2/server.
   */
  private async responsesFor(serverName: string, minimumValidUntilTs: number): Promise<JsonObject[]> {
    if (serverName === this.config.server_name) return [this.ownKeys.current() as unknown as JsonObject];
    const responses = await this.keyRing.serverKeyResponses(serverName, minimumValidUntilTs);
    return responses.map((response) => signJson(response, this.config.server_name, this.signingKey));
  }
}
