/**
 * Signing JSON and keys: the test vectors of content/appendices.md
 * "Cryptographic Test Vectors" ("Signing Key", "JSON Signing"), and the
 * checks of "Checking for a Signature".
 */
import { createPublicKey, sign as cryptoSign } from 'node:crypto';
import { decodeBase64, encodeBase64 } from '../base64';
import {
  checkSignatures,
  generateSigningKey,
  parseKeyId,
  parseSigningKeyFile,
  serialiseSigningKeyFile,
  signedBytes,
  signingKeyFromSeed,
  signJson,
  verifyJsonSignature,
  verifyKeyFromBase64,
  type KnownVerifyKey,
} from './index';

const SPEC_SEED = 'YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1';
const specKey = () => signingKeyFromSeed(decodeBase64(SPEC_SEED), '1');

describe('JSON signing test vectors (appendices.md "JSON Signing")', () => {
  it('signs the empty object', () => {
    expect(signJson({}, 'domain', specKey())).toEqual({
      signatures: {
        domain: {
          'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
        },
      },
    });
  });

  it('signs an object with data values', () => {
    expect(signJson({ one: 1, two: 'Two' }, 'domain', specKey())).toEqual({
      one: 1,
      signatures: {
        domain: {
          'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
        },
      },
      two: 'Two',
    });
  });

  it('verifies the vectors with the public key of the seed', () => {
    const key = specKey();
    const signed = { one: 1, two: 'Two', signatures: { domain: { 'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw' } } };
    expect(verifyJsonSignature(signed, 'domain', 'ed25519:1', key.publicKeyBase64)).toBe(true);
    expect(verifyJsonSignature({ ...signed, two: 'Three' }, 'domain', 'ed25519:1', key.publicKeyBase64)).toBe(false);
  });
});

describe('signJson', () => {
  it('leaves unsigned out of the signature, keeps it and keeps other signatures', () => {
    const key = specKey();
    const other = generateSigningKey('other');
    const original = { a: 1, unsigned: { age_ts: 5 }, signatures: { 'other.example': { 'ed25519:x': 'sig' } } };
    const signed = signJson(original, 'domain', key);
    expect(signed.unsigned).toEqual({ age_ts: 5 });
    expect(signed.signatures['other.example']).toEqual({ 'ed25519:x': 'sig' });
    // The signature over {a:1} is the one made without unsigned and signatures.
    expect(signed.signatures['domain']['ed25519:1']).toBe(signJson({ a: 1 }, 'domain', key).signatures['domain']['ed25519:1']);
    // Changing unsigned does not break it.
    expect(verifyJsonSignature({ ...signed, unsigned: { age: 999 } }, 'domain', 'ed25519:1', key.publicKeyBase64)).toBe(true);
    // The input is untouched.
    expect(original.signatures).toEqual({ 'other.example': { 'ed25519:x': 'sig' } });
    // A second key of another server adds to the map.
    const twice = signJson(signed, 'other.example', other);
    expect(Object.keys(twice.signatures['other.example']).sort()).toEqual(['ed25519:other', 'ed25519:x']);
    expect(twice.signatures['domain']).toEqual(signed.signatures['domain']);
  });

  it('takes the key as { keyId, privateKey } or as key ID and private key', () => {
    const key = specKey();
    const expected = signJson({ one: 1 }, 'domain', key);
    expect(signJson({ one: 1 }, 'domain', { keyId: key.keyId, privateKey: key.privateKey })).toEqual(expected);
    expect(signJson({ one: 1 }, 'domain', key.keyId, key.privateKey)).toEqual(expected);
    expect(signJson({ a: 1.5 }, 'domain', key.keyId, key.privateKey, { strict: false }).signatures['domain']['ed25519:1']).toEqual(
      signJson({ a: 1.5 }, 'domain', key, { strict: false }).signatures['domain']['ed25519:1'],
    );
  });

  it('signs the canonical bytes', () => {
    const key = generateSigningKey();
    const signed = signJson({ b: [1, 2], a: 'é' }, 'hs', key);
    const expected = encodeBase64(cryptoSign(null, Buffer.from('{"a":"é","b":[1,2]}', 'utf8'), key.privateKey));
    expect(signed.signatures['hs'][key.keyId]).toBe(expected);
    expect(signedBytes(signed).toString('utf8')).toBe('{"a":"é","b":[1,2]}');
  });

  it('refuses floats in strict mode and signs them in lenient mode', () => {
    expect(() => signJson({ a: 1.5 }, 'hs', specKey())).toThrow();
    const signed = signJson({ a: 1.5 }, 'hs', specKey(), { strict: false });
    expect(verifyJsonSignature(signed, 'hs', 'ed25519:1', specKey().publicKeyBase64, { strict: false })).toBe(true);
  });
});

describe('keys', () => {
  it('derives the same public key as node:crypto from the seed', () => {
    const key = specKey();
    expect(key.keyId).toBe('ed25519:1');
    const jwk = createPublicKey(key.privateKey).export({ format: 'jwk' });
    expect(Buffer.from(String(jwk.x), 'base64url').equals(decodeBase64(key.publicKeyBase64))).toBe(true);
  });

  it('generates keys with Synapse-like versions', () => {
    const key = generateSigningKey();
    expect(key.version).toMatch(/^a_[A-Za-z0-9]{4}$/);
    expect(key.seed).toHaveLength(32);
    expect(generateSigningKey().seed.equals(key.seed)).toBe(false);
    expect(generateSigningKey('mine').keyId).toBe('ed25519:mine');
    expect(() => generateSigningKey('bad:version')).toThrow();
  });

  it('reads and writes the signing key file format', () => {
    const text = `ed25519 a_test ${SPEC_SEED}\n`;
    const [key] = parseSigningKeyFile(text);
    expect(key.version).toBe('a_test');
    expect(key.seed.equals(decodeBase64(SPEC_SEED))).toBe(true);
    // Written back unpadded; the spec seed's non-zero trailing bits are not kept, the bytes are.
    const written = serialiseSigningKeyFile([key]);
    expect(written).toMatch(/^ed25519 a_test [A-Za-z0-9+/]{43}\n$/);
    expect(parseSigningKeyFile(written)[0].publicKeyBase64).toBe(key.publicKeyBase64);
    const two = [generateSigningKey('k1'), generateSigningKey('k2')];
    const parsed = parseSigningKeyFile(serialiseSigningKeyFile(two) + '\n');
    expect(parsed.map((k) => k.keyId)).toEqual(['ed25519:k1', 'ed25519:k2']);
    expect(parsed[1].publicKeyBase64).toBe(two[1].publicKeyBase64);
  });

  it('refuses malformed key files without echoing the secret', () => {
    expect(() => parseSigningKeyFile('')).toThrow(/no key/);
    expect(() => parseSigningKeyFile(`ed448 a_1 ${SPEC_SEED}`)).toThrow(/algorithm/);
    expect(() => parseSigningKeyFile(`ed25519 a:1 ${SPEC_SEED}`)).toThrow(/version/);
    expect(() => parseSigningKeyFile('ed25519 a_1 c2hvcnQ')).toThrow(/32 bytes/);
    expect(() => parseSigningKeyFile(`ed25519 a_1`)).toThrow(/line 1/);
    let message = '';
    try {
      parseSigningKeyFile(`ed25519 a_1 ${SPEC_SEED} extra`);
    } catch (err) {
      message = String(err);
    }
    expect(message).toMatch(/line 1/);
    expect(message).not.toContain(SPEC_SEED);
  });

  it('parses key IDs', () => {
    expect(parseKeyId('ed25519:abc_1')).toEqual({ algorithm: 'ed25519', version: 'abc_1' });
    expect(parseKeyId('noversion')).toBeUndefined();
  });

  it('caches verify keys and refuses bad ones', () => {
    const key = generateSigningKey();
    expect(verifyKeyFromBase64(key.publicKeyBase64)).toBe(verifyKeyFromBase64(key.publicKeyBase64));
    expect(() => verifyKeyFromBase64('c2hvcnQ')).toThrow();
    expect(() => verifyKeyFromBase64('!!!')).toThrow();
  });
});

describe('checkSignatures (appendices.md "Checking for a Signature")', () => {
  const a = generateSigningKey('a');
  const a2 = generateSigningKey('a2');
  const b = generateSigningKey('b');
  const keys: Record<string, Record<string, KnownVerifyKey>> = {
    'a.example': { 'ed25519:a': { key: a.publicKeyBase64 }, 'ed25519:a2': { key: a2.publicKey, validUntilTs: 1000 } },
    'b.example': { 'ed25519:b': { key: b.publicKeyBase64 } },
  };
  const lookup = (server: string, keyId: string) => keys[server]?.[keyId];
  const doc = signJson(signJson({ x: 1 }, 'a.example', a), 'b.example', b);

  it('passes when every required server signed', () => {
    const result = checkSignatures(doc, ['a.example', 'b.example'], lookup);
    expect(result).toEqual({
      ok: true,
      verified: [
        { serverName: 'a.example', keyId: 'ed25519:a' },
        { serverName: 'b.example', keyId: 'ed25519:b' },
      ],
    });
  });

  it('fails when a required server has no signature', () => {
    expect(checkSignatures(doc, ['c.example'], lookup)).toEqual({ ok: false, serverName: 'c.example', reason: 'missing-signature' });
    expect(checkSignatures({ x: 1 }, ['a.example'], lookup)).toMatchObject({ ok: false, reason: 'missing-signature' });
  });

  it('ignores algorithms it does not understand, failing if none is left', () => {
    const odd = { x: 1, signatures: { 'a.example': { 'curve448:z': 'AAAA' } } };
    expect(checkSignatures(odd, ['a.example'], lookup)).toMatchObject({ ok: false, reason: 'unsupported-algorithm' });
    const mixed = { ...doc, signatures: { ...doc.signatures, 'a.example': { ...doc.signatures['a.example'], 'curve448:z': 'AAAA' } } };
    expect(checkSignatures(mixed, ['a.example'], lookup).ok).toBe(true);
  });

  it('fails when no key is known, ignores unknown keys beside a known one', () => {
    const unknown = signJson({ x: 1 }, 'a.example', generateSigningKey('zz'));
    expect(checkSignatures(unknown, ['a.example'], lookup)).toMatchObject({ ok: false, reason: 'unknown-key' });
    const both = signJson(unknown, 'a.example', a);
    expect(checkSignatures(both, ['a.example'], lookup).ok).toBe(true);
  });

  it('fails on a bad signature by a known key, including bad Base64', () => {
    const tampered = { ...doc, x: 2 };
    expect(checkSignatures(tampered, ['a.example'], lookup)).toEqual({ ok: false, serverName: 'a.example', reason: 'bad-signature', keyId: 'ed25519:a' });
    const garbage = { x: 1, signatures: { 'a.example': { 'ed25519:a': 'not base64!' } } };
    expect(checkSignatures(garbage, ['a.example'], lookup)).toMatchObject({ ok: false, reason: 'bad-signature' });
    const short = { x: 1, signatures: { 'a.example': { 'ed25519:a': 'AAAA' } } };
    expect(checkSignatures(short, ['a.example'], lookup)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('skips keys that expired before validAt', () => {
    const byA2 = signJson({ x: 1 }, 'a.example', a2);
    expect(checkSignatures(byA2, ['a.example'], lookup, { validAt: 1000 }).ok).toBe(true);
    expect(checkSignatures(byA2, ['a.example'], lookup, { validAt: 1001 })).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(checkSignatures(byA2, ['a.example'], lookup).ok).toBe(true);
  });

  it('accepts KeyObjects and Base64 keys alike', () => {
    expect(verifyJsonSignature(doc, 'a.example', 'ed25519:a', a.publicKey)).toBe(true);
    expect(verifyJsonSignature(doc, 'a.example', 'ed25519:a', 'c2hvcnQ')).toBe(false);
    expect(verifyJsonSignature(doc, 'a.example', 'ed25519:nope', a.publicKey)).toBe(false);
  });
});
