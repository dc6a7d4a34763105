import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateSigningKey, parseSigningKeyFile, serialiseSigningKeyFile, type SigningKey } from '@atrium/matrix';

/**
 * The server's signing key file, in the format Synapse uses (one
 * `ed25519 <version> <unpadded base64 seed>` line per key), so keys can move
 * between implementations. Parsing and key objects come from @atrium/matrix;
 * this module only reads and writes the file. Spec: server-server-api
 * "Server keys".
 */
export type { SigningKey };

/** Writes a new key file (mode 0600) unless one exists. Returns true if it wrote one. */
export function writeNewSigningKeyFile(path: string): boolean {
  if (existsSync(path)) return false;
  mkdirSync(dirname(path), { recursive: true });
  try {
    writeFileSync(path, serialiseSigningKeyFile([generateSigningKey()]), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it between the check and the write: theirs wins.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  return true;
}

/**
 * Loads the key to sign with (the file's first). With `create`, a missing file
 * is created first (the embedded mode's "nothing to set up"); without it
 * (cluster services) a missing key is an error, since replicas that each made
 * their own key would sign with different keys.
 */
export async function loadSigningKey(path: string, create: boolean): Promise<SigningKey> {
  if (create) writeNewSigningKeyFile(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the signing key ${path} (${(err as NodeJS.ErrnoException).code}): create it with generate-config`);
  }
  return parseSigningKeyFile(text)[0];
}
