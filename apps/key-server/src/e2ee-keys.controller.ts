import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import { verifyPassword, type AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { E2eeService, parseSyncTokenPositions, type RemoteKeysOptions } from '@atrium/e2ee';
import { FEDERATION_CLIENT, type FederationClient } from '@atrium/federation-client';
import {
  AccessTokenGuard,
  CurrentRequester,
  Errors,
  MatrixError,
  requireJsonObject,
  requireString,
  type Requester,
  type UserInteractiveAuth,
} from '@atrium/http';
import { ACCOUNT_STORE, BUS, CONFIG, DOCUMENT_STORE, USER_INTERACTIVE_AUTH } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';

/** v3 and r0, and `unstable`, which deploy/routes.yaml also sends here (older clients use it for /keys). */
const CLIENT_PREFIXES = ['_matrix/client/v3', '_matrix/client/r0', '_matrix/client/unstable'];

/**
 * End-to-end encryption keys of the Client-Server API (modules/end_to_end_encryption.md;
 * data/api/client-server/keys.yaml, cross_signing.yaml, key_backup.yaml).
 * The logic lives in @atrium/e2ee; this controller parses requests.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class E2eeKeysController {
  constructor(
    @Inject(DOCUMENT_STORE) private readonly documents: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(USER_INTERACTIVE_AUTH) private readonly uia: UserInteractiveAuth,
    @Inject(FEDERATION_CLIENT) private readonly federation: FederationClient,
  ) {}

  /** Remote users of /keys/query and /keys/claim are asked of their servers (libs/e2ee/src/remote-keys.ts). */
  private get remote(): RemoteKeysOptions {
    return { client: this.federation };
  }

  private service(): Promise<E2eeService> {
    return E2eeService.shared(this.documents, this.bus, this.accounts, this.config.server_name);
  }

  @Post('keys/upload')
  @HttpCode(200)
  async upload(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return (await this.service()).upload(requester.userId, requester.deviceId, requireJsonObject(body));
  }

  @Post('keys/query')
  @HttpCode(200)
  async query(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return (await this.service()).query(requester.userId, requireJsonObject(body), this.remote);
  }

  @Post('keys/claim')
  @HttpCode(200)
  async claim(@Body() body: unknown) {
    return (await this.service()).claim(requireJsonObject(body), this.remote);
  }

  /** GET /keys/changes: `from` and `to` are sync tokens (keys.yaml). */
  @Get('keys/changes')
  async changes(@CurrentRequester() requester: Requester, @Query('from') from?: string, @Query('to') to?: string) {
    if (from === undefined) throw Errors.missingParam('from');
    if (to === undefined) throw Errors.missingParam('to');
    const f = parseSyncTokenPositions(from);
    const t = parseSyncTokenPositions(to);
    if (!f || !t) throw Errors.invalidParam('from and to must be sync tokens');
    return (await this.service()).deviceListDelta(requester.userId, f, t);
  }

  @Post('keys/device_signing/upload')
  @HttpCode(200)
  async uploadCrossSigning(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    await (await this.service()).uploadCrossSigning(requester.userId, body, async () => {
      await this.uia.check({
        auth: body.auth,
        flows: [{ stages: ['m.login.password'] }],
        operation: `device_signing_upload:${requester.userId}`,
        verifiers: { 'm.login.password': (auth) => this.passwordStage(requester, auth) },
      });
    });
    return {};
  }

  /** The m.login.password stage ("Password-based"), bound to the requesting user, as the accounts endpoints check it. */
  private async passwordStage(requester: Requester, auth: Record<string, unknown>): Promise<string> {
    const identifier = auth.identifier;
    let user: unknown = auth.user;
    if (typeof identifier === 'object' && identifier !== null && !Array.isArray(identifier)) {
      const id = identifier as Record<string, unknown>;
      if (id.type !== 'm.id.user') throw new MatrixError(400, 'M_UNKNOWN', `Unknown identifier type ${String(id.type)}`);
      user = id.user;
    }
    if (typeof user !== 'string') throw Errors.missingParam('identifier');
    const userId = user.startsWith('@') ? user : `@${user}:${this.config.server_name}`;
    const password = requireString(auth, 'password');
    const record = await this.accounts.getUser(userId);
    if (!record || record.deactivated || !record.password_hash || !(await verifyPassword(password, record.password_hash))) {
      throw Errors.forbidden('Invalid username or password');
    }
    if (userId !== requester.userId) throw Errors.forbidden('You can only authenticate as yourself');
    return userId;
  }

  @Post('keys/signatures/upload')
  @HttpCode(200)
  async uploadSignatures(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return (await this.service()).uploadSignatures(requester.userId, requireJsonObject(body), this.remote);
  }

  // ---- key backup versions ----

  @Post('room_keys/version')
  @HttpCode(200)
  async createBackup(@CurrentRequester() requester: Requester, @Body() body: unknown) {
    return (await this.service()).createBackup(requester.userId, requireJsonObject(body));
  }

  @Get('room_keys/version')
  async currentBackup(@CurrentRequester() requester: Requester) {
    return (await this.service()).getBackup(requester.userId);
  }

  @Get('room_keys/version/:version')
  async backup(@CurrentRequester() requester: Requester, @Param('version') version: string) {
    return (await this.service()).getBackup(requester.userId, version);
  }

  @Put('room_keys/version/:version')
  async updateBackup(@CurrentRequester() requester: Requester, @Param('version') version: string, @Body() body: unknown): Promise<Record<string, never>> {
    await (await this.service()).updateBackup(requester.userId, version, requireJsonObject(body));
    return {};
  }

  @Delete('room_keys/version/:version')
  async deleteBackup(@CurrentRequester() requester: Requester, @Param('version') version: string): Promise<Record<string, never>> {
    await (await this.service()).deleteBackup(requester.userId, version);
    return {};
  }

  // ---- backed-up keys, at the three levels ----

  @Put('room_keys/keys')
  async putAll(@CurrentRequester() requester: Requester, @Query('version') version: string | undefined, @Body() rawBody: unknown) {
    const body = requireJsonObject(rawBody);
    const rooms = body.rooms;
    if (!isObject(rooms)) throw Errors.badJson('"rooms" must be an object');
    const parsed: Record<string, Record<string, unknown>> = {};
    for (const [roomId, room] of Object.entries(rooms)) {
      if (!isObject(room) || !isObject(room.sessions)) throw Errors.badJson(`rooms.${roomId}.sessions must be an object`);
      parsed[roomId] = room.sessions;
    }
    return (await this.service()).putBackupKeys(requester.userId, version, parsed);
  }

  @Put('room_keys/keys/:roomId')
  async putRoom(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('version') version: string | undefined, @Body() rawBody: unknown) {
    const body = requireJsonObject(rawBody);
    if (!isObject(body.sessions)) throw Errors.badJson('"sessions" must be an object');
    return (await this.service()).putBackupKeys(requester.userId, version, { [roomId]: body.sessions });
  }

  @Put('room_keys/keys/:roomId/:sessionId')
  async putSession(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('sessionId') sessionId: string,
    @Query('version') version: string | undefined,
    @Body() body: unknown,
  ) {
    return (await this.service()).putBackupKeys(requester.userId, version, { [roomId]: { [sessionId]: requireJsonObject(body) } });
  }

  @Get('room_keys/keys')
  async getAll(@CurrentRequester() requester: Requester, @Query('version') version?: string) {
    return (await this.service()).getBackupKeys(requester.userId, version);
  }

  @Get('room_keys/keys/:roomId')
  async getRoom(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('version') version?: string) {
    return (await this.service()).getBackupKeys(requester.userId, version, roomId);
  }

  @Get('room_keys/keys/:roomId/:sessionId')
  async getSession(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('sessionId') sessionId: string, @Query('version') version?: string) {
    return (await this.service()).getBackupKeys(requester.userId, version, roomId, sessionId);
  }

  @Delete('room_keys/keys')
  async deleteAll(@CurrentRequester() requester: Requester, @Query('version') version?: string) {
    return (await this.service()).deleteBackupKeys(requester.userId, version);
  }

  @Delete('room_keys/keys/:roomId')
  async deleteRoom(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Query('version') version?: string) {
    return (await this.service()).deleteBackupKeys(requester.userId, version, roomId);
  }

  @Delete('room_keys/keys/:roomId/:sessionId')
  async deleteSession(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('sessionId') sessionId: string, @Query('version') version?: string) {
    return (await this.service()).deleteBackupKeys(requester.userId, version, roomId, sessionId);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
