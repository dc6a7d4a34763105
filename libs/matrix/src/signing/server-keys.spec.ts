/** `/_matrix/key/v2/server` bodies (server-server-api.md "Publishing Keys", keys.yaml). */
import { buildServerKeys, generateSigningKey, signJson, verifyJsonSignature, verifyServerKeys } from './index';

describe('server keys', () => {
  const current = generateSigningKey('cur');
  const second = generateSigningKey('two');
  const old = generateSigningKey('old');
  const oldVerifyKeys = { [old.keyId]: { key: old.publicKeyBase64, expired_ts: 1000 } };

  it('builds a response signed by every current key', () => {
    const body = buildServerKeys({ serverName: 'example.org', signingKeys: [current, second], oldVerifyKeys, validUntilTs: 5000 });
    expect(body.server_name).toBe('example.org');
    expect(body.valid_until_ts).toBe(5000);
    expect(body.verify_keys).toEqual({ 'ed25519:cur': { key: current.publicKeyBase64 }, 'ed25519:two': { key: second.publicKeyBase64 } });
    expect(body.old_verify_keys).toEqual(oldVerifyKeys);
    expect(Object.keys(body.signatures['example.org']).sort()).toEqual(['ed25519:cur', 'ed25519:two']);
    expect(verifyJsonSignature(body, 'example.org', 'ed25519:cur', current.publicKeyBase64)).toBe(true);
    expect(verifyJsonSignature(body, 'example.org', 'ed25519:two', second.publicKey)).toBe(true);
    expect(() => buildServerKeys({ serverName: 'x', signingKeys: [], validUntilTs: 1 })).toThrow();
  });

  it('verifies a good response and returns its keys', () => {
    const body = buildServerKeys({ serverName: 'example.org', signingKeys: [current], oldVerifyKeys, validUntilTs: 5000 });
    // Through JSON, as it arrives.
    const result = verifyServerKeys(JSON.parse(JSON.stringify(body)), 'example.org');
    expect(result).toEqual({
      ok: true,
      keys: {
        serverName: 'example.org',
        validUntilTs: 5000,
        verifyKeys: { 'ed25519:cur': { key: current.publicKeyBase64, validUntilTs: 5000 } },
        oldVerifyKeys: { 'ed25519:old': { key: old.publicKeyBase64, expiredTs: 1000 } },
      },
    });
  });

  it('accepts a notary signature beside the server own', () => {
    const body = buildServerKeys({ serverName: 'example.org', signingKeys: [current], validUntilTs: 5000 });
    const notarised = signJson(body, 'notary.org', generateSigningKey('n'));
    expect(verifyServerKeys(notarised, 'example.org').ok).toBe(true);
  });

  it('refuses responses for another server, tampered or unsigned ones, and malformed ones', () => {
    const body = buildServerKeys({ serverName: 'example.org', signingKeys: [current], validUntilTs: 5000 });
    expect(verifyServerKeys(body, 'other.org')).toMatchObject({ ok: false, reason: 'wrong-server' });
    expect(verifyServerKeys({ ...body, valid_until_ts: 9999 }, 'example.org')).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(verifyServerKeys({ ...body, signatures: {} }, 'example.org')).toMatchObject({ ok: false, reason: 'missing-signature' });
    // Signed only by a key it does not publish.
    const { signatures: _s, ...unsignedBody } = body;
    const foreign = signJson(unsignedBody, 'example.org', generateSigningKey('zz'));
    expect(verifyServerKeys(foreign, 'example.org')).toMatchObject({ ok: false, reason: 'unknown-key' });
    for (const bad of [
      null,
      [],
      { ...body, server_name: 1 },
      { ...body, valid_until_ts: '5000' },
      { ...body, valid_until_ts: 1.5 },
      { ...body, verify_keys: [] },
      { ...body, verify_keys: { 'ed25519:cur': { key: 'c2hvcnQ' } } },
      { ...body, verify_keys: { 'ed25519:bad-ver': { key: current.publicKeyBase64 } } },
      { ...body, old_verify_keys: { 'ed25519:old': { key: old.publicKeyBase64 } } },
      { ...body, old_verify_keys: 'x' },
    ]) {
      expect(verifyServerKeys(bad, 'example.org')).toMatchObject({ ok: false, reason: 'malformed' });
    }
  });

  it('ignores verify keys of algorithms it does not know', () => {
    const body = buildServerKeys({ serverName: 'example.org', signingKeys: [current], validUntilTs: 5000 });
    const { signatures: _s, ...rest } = body;
    const withOther = signJson({ ...rest, verify_keys: { ...rest.verify_keys, 'curve448:x': { key: 'whatever' } } }, 'example.org', current);
    const result = verifyServerKeys(withOther, 'example.org');
    expect(result.ok && Object.keys(result.keys.verifyKeys)).toEqual(['ed25519:cur']);
  });
});
