import { createHmac } from 'node:crypto';
import type { AtriumConfig } from '@atrium/config';

/** GET /voip/turnServer's 200 body (voip.yaml). */
export interface TurnCredentials {
  username: string;
  password: string;
  uris: string[];
  ttl: number;
}

/**
 * TURN credentials for `userId`, or null when no TURN server is configured.
 * The TURN REST API convention (draft-uberti-behave-turn-rest, coturn
 * `use-auth-secret`): the username is `<expiry, unix seconds>:<user ID>` (the
 * spec's example "1443779631:@user:example.com") and the password the base64
 * HMAC-SHA1 of the username under the secret shared with the TURN server, so
 * the TURN server checks it without asking us.
 */
export function turnCredentials(voip: AtriumConfig['voip'], userId: string, nowMs: number): TurnCredentials | null {
  if (voip.turn_uris.length === 0 || voip.turn_shared_secret === '') return null;
  const ttl = Math.max(1, Math.floor(voip.turn_user_lifetime_ms / 1000));
  const username = `${Math.floor(nowMs / 1000) + ttl}:${userId}`;
  const password = createHmac('sha1', voip.turn_shared_secret).update(username).digest('base64');
  return { username, password, uris: [...voip.turn_uris], ttl };
}
