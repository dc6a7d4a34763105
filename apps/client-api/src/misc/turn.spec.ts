import { createHmac } from 'node:crypto';
import { defaultConfig } from '@atrium/config';
import { turnCredentials } from './turn';

describe('turnCredentials', () => {
  const voip = defaultConfig('example.org').voip;

  it('gives none without URIs or without a shared secret (no TURN configured)', () => {
    expect(turnCredentials(voip, '@a:example.org', 0)).toBeNull();
    expect(turnCredentials({ ...voip, turn_uris: ['turn:t.example.org'] }, '@a:example.org', 0)).toBeNull();
    expect(turnCredentials({ ...voip, turn_shared_secret: 's' }, '@a:example.org', 0)).toBeNull();
  });

  it('follows the TURN REST convention: <expiry>:<user>, base64 HMAC-SHA1 of it', () => {
    const config = { ...voip, turn_uris: ['turn:t.example.org:3478?transport=udp'], turn_shared_secret: 'secret', turn_user_lifetime_ms: 3_600_000 };
    const creds = turnCredentials(config, '@a:example.org', 1_000_000_500);
    expect(creds).toEqual({
      username: `${1_000_000 + 3600}:@a:example.org`,
      password: createHmac('sha1', 'secret').update(`${1_000_000 + 3600}:@a:example.org`).digest('base64'),
      uris: ['turn:t.example.org:3478?transport=udp'],
      ttl: 3600,
    });
  });
});
