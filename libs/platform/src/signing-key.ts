import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The server's Ed25519 signing key, kept in a file in the format Synapse uses
 * (`ed25519 <version> <unpadded base64 seed>` on one line), so keys can move
 * between implementations. Spec: server-server-api "Server keys"; key IDs are
 * `ed25519:<version>` (appendices "Signing JSON").
 */
export interface SigningKey {
  /** `ed25519:<version>` */
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key, unpadded standard base64, as published in verify_keys. */
  publicKeyBase64: string;
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function unpadded(buffer: Buffer): string {
  return buffer.toString('base64').replace(/=+$/, '');
}

export function signingKeyFromSeed(version: string, seed: Buffer): SigningKey {
  if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { keyId: `ed25519:${version}`, privateKey, publicKey, publicKeyBase64: unpadded(raw) };
}

/** Parses `ed25519 <version> <seed>`; the version may only use [a-zA-Z0-9_]. */
export function parseSigningKeyFile(text: string): SigningKey {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 3 || parts[0] !== 'ed25519' || !/^[A-Za-z0-9_]+$/.test(parts[1])) {
    throw new Error('signing key file must hold "ed25519 <version> <base64 seed>"');
  }
  return signingKeyFromSeed(parts[1], Buffer.from(parts[2], 'base64'));
}

/** A new key with a random version `a_XXXX`, and the file text that stores it. */
export function generateSigningKey(): { key: SigningKey; fileText: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const version = `a_${randomBytes(3).toString('base64url').replace(/[-_]/g, 'x')}`;
  return { key: signingKeyFromSeed(version, seed), fileText: `ed25519 ${version} ${unpadded(seed)}\n` };
}

/** Writes a new key file (mode 0600) unless one exists. Returns true if it wrote one. */
export function writeNewSigningKeyFile(path: string): boolean {
  if (existsSync(path)) return false;
  mkdirSync(dirname(path), { recursive: true });
  try {
    writeFileSync(path, generateSigningKey().fileText, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it between the check and the write: theirs wins.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  return true;
}

/**
 * Loads the key. With `create`, a missing file is created first (the embedded
 * mode's "nothing to set up"); without it (cluster services) a missing key is
 * an error, since replicas that each made their own key would sign with
 * different keys.
 */
export async function loadSigningKey(path: string, create: boolean): Promise<SigningKey> {
  if (create) writeNewSigningKeyFile(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the signing key ${path} (${(err as NodeJS.ErrnoException).code}): create it with generate-config`);
  }
  return parseSigningKeyFile(text);
}
