import { Body, Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { PushStores, pusherOf, type NewPusher, type Pusher } from '@atrium/push';
import { CLIENT_PREFIXES } from '../auth/auth.controller';

/** pusher.yaml: "Max length, 64 chars" (app_id) and "Max length, 512 bytes" (pushkey). */
const MAX_APP_ID_CHARS = 64;
const MAX_PUSHKEY_BYTES = 512;
/** The path an HTTP pusher's URL must have (pusher.yaml PusherData.url). */
const NOTIFY_PATH = '/_matrix/push/v1/notify';

function stringField(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw Errors.invalidParam(`${key} must be a string`);
  return value;
}

/**
 * data.url of an HTTP pusher: "MUST be an HTTPS URL with a path of
 * /_matrix/push/v1/notify". Plain http is accepted too, for gateways on a
 * private network or loopback (Synapse does the same); the spec's security
 * note says it "should be over HTTPS".
 */
function requireNotifyUrl(data: Record<string, unknown>): void {
  if (data.url === undefined) throw Errors.missingParam('data.url');
  if (typeof data.url !== 'string') throw Errors.invalidParam('data.url must be a string');
  let url: URL;
  try {
    url = new URL(data.url);
  } catch {
    throw Errors.invalidParam('data.url is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw Errors.invalidParam('data.url must be an https (or http) URL');
  if (url.pathname !== NOTIFY_PATH) throw Errors.invalidParam(`data.url must have the path ${NOTIFY_PATH}`);
  if (url.username !== '' || url.password !== '') throw Errors.invalidParam('data.url may not carry credentials');
}

/**
 * Pushers (client-server-api "Client behaviour"; data/api/client-server/pusher.yaml).
 * Kinds: `http` (served by the push gateway), `email` (stored and listed;
 * Atrium has no mail sender yet, so nothing is sent), `null` (delete).
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class PushersController {
  constructor(private readonly push: PushStores) {}

  @Get('pushers')
  async list(@CurrentRequester() requester: Requester): Promise<{ pushers: Pusher[] }> {
    return { pushers: (await this.push.pushers.forUser(requester.userId)).map(pusherOf) };
  }

  @Post('pushers/set')
  @HttpCode(200)
  async set(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    // required: kind, app_id, pushkey ("kind … null deletes the pusher", so null counts as given).
    const missing = ['kind', 'app_id', 'pushkey'].filter((k) => body[k] === undefined);
    if (missing.length > 0) throw Errors.missingParam(missing.join(', '));
    const appId = stringField(body, 'app_id') as string;
    const pushkey = stringField(body, 'pushkey') as string;
    if (appId === '' || appId.length > MAX_APP_ID_CHARS) throw Errors.invalidParam(`app_id must be 1 to ${MAX_APP_ID_CHARS} characters`);
    if (pushkey === '' || Buffer.byteLength(pushkey, 'utf8') > MAX_PUSHKEY_BYTES) throw Errors.invalidParam(`pushkey must be 1 to ${MAX_PUSHKEY_BYTES} bytes`);

    if (body.kind === null) {
      // Deleting a pusher that does not exist is not an error (Synapse answers {} too).
      await this.push.pushers.delete(requester.userId, appId, pushkey);
      return {};
    }
    if (body.kind !== 'http' && body.kind !== 'email') throw Errors.invalidParam('kind must be "http", "email" or null');
    // "Required if kind is not null": app_display_name, device_display_name, lang, data.
    const required = ['app_display_name', 'device_display_name', 'lang', 'data'].filter((k) => body[k] === undefined || body[k] === null);
    if (required.length > 0) throw Errors.missingParam(required.join(', '));
    const data = body.data;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw Errors.invalidParam('data must be an object');
    const dataObject = data as Record<string, unknown>;
    if (body.kind === 'http') requireNotifyUrl(dataObject);
    if (dataObject.format !== undefined && dataObject.format !== 'event_id_only') throw Errors.invalidParam('data.format must be "event_id_only" when given');
    if (body.append !== undefined && typeof body.append !== 'boolean') throw Errors.invalidParam('append must be a boolean');
    const pusher: NewPusher = {
      kind: body.kind,
      app_id: appId,
      pushkey,
      app_display_name: stringField(body, 'app_display_name') as string,
      device_display_name: stringField(body, 'device_display_name') as string,
      lang: stringField(body, 'lang') as string,
      profile_tag: stringField(body, 'profile_tag') ?? null,
      data: dataObject,
    };
    await this.push.pushers.set(requester.userId, pusher, body.append === true);
    return {};
  }
}
