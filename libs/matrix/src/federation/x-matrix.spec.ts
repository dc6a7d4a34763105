/**
 * X-Matrix: server-server-api.md "Request Authentication" (the example
 * request and header, the quoting rules of RFC 9110 it cites, and the
 * destination rule).
 */
import { decodeBase64 } from '../base64';
import { generateSigningKey, signingKeyFromSeed, signJson, type KnownVerifyKey } from '../signing';
import { formatXMatrix, parseXMatrix, signRequest, verifyRequest, type FederationRequestObject } from './x-matrix';

// The key of appendices.md "Cryptographic Test Vectors".
const specKey = signingKeyFromSeed(decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'), 'key1');
const ORIGIN = 'origin.hs.example.com';
const DEST = 'destination.hs.example.com';

function lookupFor(keys: Record<string, KnownVerifyKey>) {
  return (server: string, keyId: string): KnownVerifyKey | undefined => keys[`${server} ${keyId}`];
}
const specLookup = lookupFor({ [`${ORIGIN} ed25519:key1`]: { key: specKey.publicKeyBase64 } });

describe('the spec example', () => {
  const request: FederationRequestObject = { method: 'POST', uri: '/target', origin: ORIGIN, destination: DEST, content: { hello: 'world' } };

  it('signs the object of step 1 and sends the header of step 2', () => {
    const header = signRequest(request, specKey);
    // The signature is the origin's signature over step 1's object, as sign_json makes it.
    const expectedSig = signJson({ method: 'POST', uri: '/target', origin: ORIGIN, destination: DEST, content: { hello: 'world' } }, ORIGIN, specKey).signatures[ORIGIN]['ed25519:key1'];
    expect(header).toBe(`X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="${expectedSig}"`);
  });

  it('leaves content out of the signed object when there is no body', () => {
    const header = signRequest({ method: 'GET', uri: '/target', origin: ORIGIN, destination: DEST }, specKey);
    const expectedSig = signJson({ method: 'GET', uri: '/target', origin: ORIGIN, destination: DEST }, ORIGIN, specKey).signatures[ORIGIN]['ed25519:key1'];
    expect(parseXMatrix(header)).toEqual({ ok: true, auth: { origin: ORIGIN, destination: DEST, key: 'ed25519:key1', sig: expectedSig } });
  });

  it('parses the example header', () => {
    expect(parseXMatrix('X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."')).toEqual({
      ok: true,
      auth: { origin: ORIGIN, destination: DEST, key: 'ed25519:key1', sig: 'ABCDEF...' },
    });
  });

  it('verifies what it signed, and refuses every change to method, uri, body, origin or destination', () => {
    const authorization = signRequest(request, specKey);
    expect(verifyRequest({ method: 'POST', uri: '/target', content: { hello: 'world' }, authorization }, DEST, specLookup)).toEqual({ ok: true, origin: ORIGIN, keyId: 'ed25519:key1' });
    for (const changed of [
      { method: 'PUT', uri: '/target', content: { hello: 'world' } },
      { method: 'POST', uri: '/target?x=1', content: { hello: 'world' } },
      { method: 'POST', uri: '/target', content: { hello: 'world!' } },
      { method: 'POST', uri: '/target' },
    ]) {
      expect(verifyRequest({ ...changed, authorization }, DEST, specLookup)).toMatchObject({ ok: false, reason: 'bad-signature' });
    }
    const otherOrigin = authorization.replace(`origin="${ORIGIN}"`, 'origin="evil.example"');
    const evilLookup = lookupFor({ 'evil.example ed25519:key1': { key: specKey.publicKeyBase64 } });
    expect(verifyRequest({ method: 'POST', uri: '/target', content: { hello: 'world' }, authorization: otherOrigin }, DEST, evilLookup)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });
});

describe('parseXMatrix: RFC 9110 credentials', () => {
  it('takes names case-insensitively, in any order, with spaces and tabs around commas and several spaces after the scheme', () => {
    expect(parseXMatrix('x-matrix   SIG="c2ln" ,\tKey="ed25519:a" , Origin="o.example",  destination="d.example"')).toEqual({
      ok: true,
      auth: { origin: 'o.example', destination: 'd.example', key: 'ed25519:a', sig: 'c2ln' },
    });
  });

  it('accepts unquoted tokens, and colons in unquoted values (older servers)', () => {
    expect(parseXMatrix('X-Matrix origin=o.example:8448,key=ed25519:a_b,sig=abc+def/ghi')).toEqual({
      ok: true,
      auth: { origin: 'o.example:8448', key: 'ed25519:a_b', sig: 'abc+def/ghi' },
    });
  });

  it('unescapes backslash pairs in quoted values', () => {
    const parsed = parseXMatrix('X-Matrix origin="o\\.ex\\"ample",key="ed25519:\\\\a",sig="s"');
    expect(parsed).toEqual({ ok: true, auth: { origin: 'o.ex"ample', key: 'ed25519:\\a', sig: 's' } });
  });

  it('ignores unknown parameters and accepts a missing destination', () => {
    expect(parseXMatrix('X-Matrix origin="o",foo="bar, baz",key="ed25519:a",sig="s",extra=1')).toEqual({ ok: true, auth: { origin: 'o', key: 'ed25519:a', sig: 's' } });
  });

  it.each([
    ['another scheme', 'Bearer abc'],
    ['no parameters', 'X-Matrix'],
    ['scheme only with space', 'X-Matrix '],
    ['missing origin', 'X-Matrix key="ed25519:a",sig="s"'],
    ['missing key', 'X-Matrix origin="o",sig="s"'],
    ['missing sig', 'X-Matrix origin="o",key="ed25519:a"'],
    ['unterminated quote', 'X-Matrix origin="o,key="ed25519:a",sig="s'],
    ['junk after a quoted value', 'X-Matrix origin="o"x,key="ed25519:a",sig="s"'],
    ['a parameter twice', 'X-Matrix origin="o",origin="p",key="ed25519:a",sig="s"'],
    ['a name without value', 'X-Matrix origin'],
    ['an empty unquoted value', 'X-Matrix origin=,key="ed25519:a",sig="s"'],
    ['no space after the scheme', 'X-Matrixorigin="o",key="k",sig="s"'],
  ])('refuses %s', (_what, header) => {
    expect(parseXMatrix(header)).toMatchObject({ ok: false });
  });

  it('round-trips formatXMatrix, escaping quotes and backslashes', () => {
    const auth = { origin: 'a"b', destination: 'c\\d', key: 'ed25519:x', sig: 'y' };
    expect(parseXMatrix(formatXMatrix(auth))).toEqual({ ok: true, auth });
  });
});

describe('verifyRequest', () => {
  const key = generateSigningKey();
  const lookup = lookupFor({ [`o.example ${key.keyId}`]: { key: key.publicKeyBase64 } });
  const signed = (destination: string) => signRequest({ method: 'GET', uri: '/_matrix/federation/v1/query/profile?user_id=%40a%3Ad', origin: 'o.example', destination }, key);

  it('refuses a destination that is not us', () => {
    expect(verifyRequest({ method: 'GET', uri: '/_matrix/federation/v1/query/profile?user_id=%40a%3Ad', authorization: signed('other.example') }, 'us.example', lookup)).toMatchObject({
      ok: false,
      reason: 'wrong-destination',
      origin: 'o.example',
    });
  });

  it('accepts an old sender without destination when it signed our name', () => {
    const header = signed('us.example').replace(',destination="us.example"', '');
    const parsed = parseXMatrix(header);
    expect(parsed.ok && 'destination' in parsed.auth).toBe(false);
    expect(verifyRequest({ method: 'GET', uri: '/_matrix/federation/v1/query/profile?user_id=%40a%3Ad', authorization: header }, 'us.example', lookup)).toMatchObject({ ok: true });
    // …and not when it signed for someone else.
    const forOther = signed('other.example').replace(',destination="other.example"', '');
    expect(verifyRequest({ method: 'GET', uri: '/_matrix/federation/v1/query/profile?user_id=%40a%3Ad', authorization: forOther }, 'us.example', lookup)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a missing or malformed header, an unknown key, an expired key, another algorithm', () => {
    const base = { method: 'GET', uri: '/_matrix/federation/v1/query/profile?user_id=%40a%3Ad' };
    expect(verifyRequest({ ...base, authorization: undefined }, 'us.example', lookup)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifyRequest({ ...base, authorization: 'X-Matrix nonsense' }, 'us.example', lookup)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifyRequest({ ...base, authorization: signed('us.example') }, 'us.example', () => undefined)).toMatchObject({ ok: false, reason: 'unknown-key' });
    const expired = () => ({ key: key.publicKeyBase64, validUntilTs: 1000 });
    expect(verifyRequest({ ...base, authorization: signed('us.example') }, 'us.example', expired, 2000)).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(verifyRequest({ ...base, authorization: signed('us.example') }, 'us.example', expired, 500)).toMatchObject({ ok: true });
    const curve = signed('us.example').replace(`key="${key.keyId}"`, 'key="curve25519:x"');
    expect(verifyRequest({ ...base, authorization: curve }, 'us.example', lookup)).toMatchObject({ ok: false, reason: 'unsupported-algorithm' });
    const garbage = signed('us.example').replace(/sig="[^"]*"/, 'sig="!!!"');
    expect(verifyRequest({ ...base, authorization: garbage }, 'us.example', lookup)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });
});
