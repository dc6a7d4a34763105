import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { hashPassword, AccountStore } from '@atrium/accounts';
import { defaultConfig, type AtriumConfig, type RegistrationMode } from '@atrium/config';
import { generateSigningKey, parseSigningKeyFile, serialiseSigningKeyFile } from '@atrium/matrix';
import { openDocumentStore } from '@atrium/storage';
import { configPathFromArgs, loadServiceConfig, stopOnSignals, writeNewSigningKeyFile } from '@atrium/platform';
import { startEmbedded } from './embedded';

/** Reads `--name value` options; flags without a value are `true`. */
export function parseOptions(argv: string[]): Map<string, string | true> {
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      options.set(arg.slice(2), next);
      i++;
    } else {
      options.set(arg.slice(2), true);
    }
  }
  return options;
}

function option(options: Map<string, string | true>, name: string): string | undefined {
  const value = options.get(name);
  return typeof value === 'string' ? value : undefined;
}

/**
 * `generate-config`: writes a config file and a fresh signing key for a server
 * name. Keys not given keep their defaults (config/atrium.sample.yaml documents
 * every key). Refuses to overwrite an existing config.
 */
export function generateConfig(argv: string[]): { configPath: string; config: AtriumConfig } {
  const options = parseOptions(argv);
  const serverName = option(options, 'server-name');
  if (!serverName) throw new Error('generate-config needs --server-name NAME');
  const configPath = resolve(option(options, 'config') ?? 'atrium.yaml');
  if (existsSync(configPath)) {
    // --keep-existing makes the command safe to run on every start (compose `init`).
    if (options.get('keep-existing') === true) return { configPath, config: loadServiceConfig(configPath) };
    throw new Error(`${configPath} exists; not overwriting it`);
  }
  const dataDir = resolve(option(options, 'data-dir') ?? './data');
  const config = defaultConfig(serverName, dataDir);
  const clientPort = option(options, 'client-port');
  const federationPort = option(options, 'federation-port');
  if (clientPort) config.listeners.client.port = Number(clientPort);
  if (federationPort) config.listeners.federation.port = Number(federationPort);
  const registration = option(options, 'registration');
  if (registration) {
    if (!['open', 'token', 'closed'].includes(registration)) throw new Error('--registration is open, token or closed');
    config.registration.mode = registration as RegistrationMode;
  }
  const signingKeyPath = option(options, 'signing-key-path');
  if (signingKeyPath) config.signing_key_path = resolve(signingKeyPath);
  const publicBaseUrl = option(options, 'public-baseurl');
  if (publicBaseUrl) config.public_baseurl = publicBaseUrl;
  mkdirSync(dirname(configPath), { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(dirname(config.signing_key_path), { recursive: true });
  writeNewSigningKeyFile(config.signing_key_path);
  const header = '# Atrium configuration, written by generate-config.\n# Every key is documented in config/atrium.sample.yaml; ATRIUM_<KEY> environment variables override it.\n';
  writeFileSync(configPath, header + stringify(config), { mode: 0o600 });
  return { configPath, config };
}

/**
 * `register-user`: creates an account directly in storage, whatever the
 * registration mode (how an operator makes the first admin on a closed server).
 */
export async function registerUser(argv: string[]): Promise<string> {
  const options = parseOptions(argv);
  const config = loadServiceConfig(configPathFromArgs(argv));
  const user = option(options, 'user');
  const password = option(options, 'password') ?? process.env.ATRIUM_NEW_USER_PASSWORD;
  if (!user || !password) throw new Error('register-user needs --user LOCALPART and --password PASSWORD (or ATRIUM_NEW_USER_PASSWORD)');
  if (!/^[a-z0-9._=\-/+]+$/.test(user)) throw new Error('the localpart may only use a-z, 0-9 and . _ = - / +');
  const store = await openDocumentStore(config.storage.url);
  try {
    const accounts = await AccountStore.open(store);
    const userId = `@${user}:${config.server_name}`;
    const created = await accounts.createUser({ userId, localpart: user, passwordHash: await hashPassword(password), isAdmin: options.get('admin') === true });
    if (!created) throw new Error(`${userId} already exists`);
    return userId;
  } finally {
    await store.close();
  }
}

/**
 * `rotate-key`: a new signing key replaces the current one, and the old one's
 * public key moves to `old_signing_keys` in the config file with
 * `expired_ts` = now, so it is published in `old_verify_keys` and others can
 * still check events it signed (server-server-api "Publishing Keys": old keys
 * are "only valid for signing events"). Both files are replaced atomically
 * (written beside, then renamed). Every process must restart to sign with the
 * new key (the cluster's services share the key file).
 */
export function rotateKey(argv: string[], now: number = Date.now()): { oldKeyId: string; newKeyId: string } {
  const configPath = resolve(configPathFromArgs(argv));
  if (!existsSync(configPath)) throw new Error(`rotate-key edits the config file, and ${configPath} does not exist`);
  const config = loadServiceConfig(configPath);
  const keyPath = config.signing_key_path;
  const [current] = parseSigningKeyFile(readFileSync(keyPath, 'utf8'));
  let next = generateSigningKey();
  // A fresh random version never repeats in practice; a clash with any known key ID would overwrite it.
  while (next.keyId === current.keyId || next.keyId in config.old_signing_keys) next = generateSigningKey();

  const text = readFileSync(configPath, 'utf8');
  const doc = parseDocument(text);
  // Existing entries (earlier rotations) are kept; comments in the file survive.
  doc.setIn(['old_signing_keys', current.keyId], doc.createNode({ key: current.publicKeyBase64, expired_ts: now }));
  const configTmp = `${configPath}.rotate-key.tmp`;
  const keyTmp = `${keyPath}.rotate-key.tmp`;
  writeFileSync(configTmp, doc.toString(), { mode: 0o600 });
  writeFileSync(keyTmp, serialiseSigningKeyFile([next]), { mode: 0o600 });
  // Config first: should the second rename fail, the old key is still in use
  // and merely also listed as old, which other servers tolerate.
  renameSync(configTmp, configPath);
  renameSync(keyTmp, keyPath);
  return { oldKeyId: current.keyId, newKeyId: next.keyId };
}

/** `start` (the default): the embedded mode. Creates a config, key and data folder on first run. */
export async function start(argv: string[]): Promise<void> {
  const configPath = configPathFromArgs(argv);
  if (!existsSync(configPath) && !process.env.ATRIUM_SERVER_NAME) {
    const { configPath: written } = generateConfig(['--server-name', 'localhost', '--config', configPath, '--data-dir', './data']);
    console.log(`First run: wrote ${written} and a signing key for server name "localhost". Edit it and restart to change.`);
  }
  const config = loadServiceConfig(configPath);
  mkdirSync(config.data_dir, { recursive: true });
  const running = await startEmbedded(config);
  stopOnSignals(running.stop);
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv[0]?.startsWith('--') || argv.length === 0 ? ['start', ...argv] : argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'generate-config': {
      const { configPath } = generateConfig(rest);
      console.log(`wrote ${configPath}`);
      return;
    }
    case 'register-user':
      console.log(`registered ${await registerUser(rest)}`);
      return;
    case 'rotate-key': {
      const { oldKeyId, newKeyId } = rotateKey(rest);
      console.log(`new signing key ${newKeyId}; ${oldKeyId} moved to old_signing_keys. Restart every Atrium process to sign with the new key.`);
      return;
    }
    default:
      throw new Error(`unknown command "${command}" (start, generate-config, register-user, rotate-key)`);
  }
}
