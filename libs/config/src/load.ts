import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { AtriumConfig, defaultConfig } from './schema';

/** Raised for a config that cannot be used; the message names the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Plain = Record<string, unknown>;

function isPlainObject(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Overlays `patch` on `base`, checking each key against the shape of the
 * defaults so a typo (`storge:`) or a wrong type fails at start-up instead of
 * being ignored. Keys whose default is a free-form map (old_signing_keys) or
 * optional (absent from the defaults) take any value of a plain type.
 */
function overlay(base: Plain, patch: Plain, path: string, freeForm: ReadonlySet<string>): Plain {
  const out: Plain = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const where = path ? `${path}.${key}` : key;
    const current = base[key];
    if (freeForm.has(where) || current === undefined) {
      if (current === undefined && !OPTIONAL_KEYS.has(where) && !freeForm.has(where)) {
        throw new ConfigError(`unknown config key "${where}"`);
      }
      out[key] = value;
      continue;
    }
    if (isPlainObject(current)) {
      // A section whose keys are all commented out reads as null: keep the defaults.
      if (value === null) continue;
      if (!isPlainObject(value)) throw new ConfigError(`config key "${where}" must be a mapping`);
      out[key] = overlay(current, value, where, freeForm);
    } else if (Array.isArray(current)) {
      if (!Array.isArray(value)) throw new ConfigError(`config key "${where}" must be a list`);
      out[key] = value;
    } else if (typeof current !== typeof value) {
      throw new ConfigError(`config key "${where}" must be a ${typeof current}, got ${JSON.stringify(value)}`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Keys without a default that may still be set. */
const OPTIONAL_KEYS = new Set([
  'listeners.federation.tls_certificate_path',
  'listeners.federation.tls_private_key_path',
  'registration.shared_secret',
  'telemetry.otlp_endpoint',
  'well_known.server',
]);
const FREE_FORM = new Set(['old_signing_keys']);

/**
 * Environment overrides: `ATRIUM_<KEY>` with `__` between nesting levels, e.g.
 * `ATRIUM_STORAGE__URL=mongodb://…`, `ATRIUM_LISTENERS__CLIENT__PORT=8008`.
 * Values are read as the type of the key they replace (numbers, booleans;
 * lists and maps as JSON).
 */
export function envOverrides(env: NodeJS.ProcessEnv, defaults: Plain): Plain {
  const patch: Plain = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('ATRIUM_') || raw === undefined) continue;
    const keys = name.slice('ATRIUM_'.length).toLowerCase().split('__');
    // Other ATRIUM_ variables (ATRIUM_CONFIG, ATRIUM_APP, tool paths for tests) are not
    // config keys; within a known section a misspelt key still fails.
    if (!(keys[0] in defaults)) continue;
    let target = patch;
    let shape: unknown = defaults;
    for (const key of keys.slice(0, -1)) {
      target = (target[key] ??= {}) as Plain;
      shape = isPlainObject(shape) ? shape[key] : undefined;
    }
    const last = keys[keys.length - 1];
    const example = isPlainObject(shape) ? shape[last] : undefined;
    target[last] = coerce(raw, example, name);
  }
  return patch;
}

function coerce(raw: string, example: unknown, name: string): unknown {
  if (typeof example === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new ConfigError(`${name} must be a number`);
    return n;
  }
  if (typeof example === 'boolean') {
    if (raw !== 'true' && raw !== 'false') throw new ConfigError(`${name} must be true or false`);
    return raw === 'true';
  }
  if (Array.isArray(example) || isPlainObject(example)) {
    try {
      return JSON.parse(raw);
    } catch {
      throw new ConfigError(`${name} must be JSON`);
    }
  }
  return raw;
}

function validate(config: AtriumConfig): AtriumConfig {
  if (!config.server_name) throw new ConfigError('config key "server_name" is required');
  if (!['open', 'token', 'closed'].includes(config.registration.mode)) {
    throw new ConfigError('registration.mode must be open, token or closed');
  }
  for (const [name, listener] of Object.entries(config.listeners)) {
    if (!Number.isInteger(listener.port) || listener.port < 0 || listener.port > 65535) {
      throw new ConfigError(`listeners.${name}.port must be a port number`);
    }
  }
  if (!config.public_baseurl.endsWith('/')) config.public_baseurl += '/';
  validateFederation(config);
  validateOldSigningKeys(config);
  validateMedia(config);
  return config;
}

/** `address/prefix` with an IPv4 or IPv6 address and a prefix that fits it. */
export function isCidr(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const slash = value.indexOf('/');
  if (slash < 0) return false;
  const family = isIP(value.slice(0, slash));
  const prefix = value.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * `old_signing_keys` is published as `old_verify_keys`
 * (definitions/keys.yaml): key IDs `ed25519:<[a-zA-Z0-9_]+>`, each with a
 * `key` and an integer `expired_ts`. A wrong entry would make other servers
 * refuse our whole key response, so it fails at start-up instead.
 */
function validateOldSigningKeys(config: AtriumConfig): void {
  if (!isPlainObject(config.old_signing_keys)) throw new ConfigError('old_signing_keys must be a mapping');
  for (const [keyId, entry] of Object.entries(config.old_signing_keys as Record<string, unknown>)) {
    if (!/^ed25519:[a-zA-Z0-9_]+$/.test(keyId)) throw new ConfigError(`old_signing_keys: ${JSON.stringify(keyId)} is not an ed25519 key ID`);
    if (!isPlainObject(entry) || typeof entry.key !== 'string' || !/^[A-Za-z0-9+/]{43}$/.test(entry.key)) {
      throw new ConfigError(`old_signing_keys.${keyId}.key must be an unpadded base64 Ed25519 public key`);
    }
    if (typeof entry.expired_ts !== 'number' || !Number.isInteger(entry.expired_ts)) throw new ConfigError(`old_signing_keys.${keyId}.expired_ts must be an integer (ms)`);
  }
}

function validateFederation(config: AtriumConfig): void {
  const federation = config.federation;
  for (const key of ['trusted_ca_paths', 'ip_range_blocklist', 'ip_range_allowlist'] as const) {
    if (!federation[key].every((v) => typeof v === 'string')) throw new ConfigError(`federation.${key} must be a list of strings`);
  }
  for (const key of ['ip_range_blocklist', 'ip_range_allowlist'] as const) {
    const bad = federation[key].find((range) => !isCidr(range));
    if (bad !== undefined) throw new ConfigError(`federation.${key}: ${JSON.stringify(bad)} is not an address/prefix range`);
  }
  federation.trusted_key_servers.forEach((server, i) => {
    const where = `federation.trusted_key_servers[${i}]`;
    if (!isPlainObject(server) || typeof server.server_name !== 'string' || server.server_name === '') {
      throw new ConfigError(`${where} needs a server_name`);
    }
    const unknown = Object.keys(server).find((k) => k !== 'server_name' && k !== 'verify_keys');
    if (unknown) throw new ConfigError(`unknown config key "${where}.${unknown}"`);
    if (server.verify_keys !== undefined) {
      if (!isPlainObject(server.verify_keys) || !Object.values(server.verify_keys).every((k) => typeof k === 'string')) {
        throw new ConfigError(`${where}.verify_keys must map key IDs to base64 public keys`);
      }
    }
  });
}

function validateMedia(config: AtriumConfig): void {
  const media = config.media;
  for (const key of ['max_upload_size', 'unused_expires_after_ms', 'max_pending_uploads', 'max_thumbnail_pixels'] as const) {
    if (!Number.isInteger(media[key]) || media[key] <= 0) throw new ConfigError(`media.${key} must be a positive integer`);
  }
  if (!Number.isInteger(media.unauthenticated_freeze_ts) || media.unauthenticated_freeze_ts < 0) {
    throw new ConfigError('media.unauthenticated_freeze_ts must be a timestamp in ms (0: no freeze)');
  }
  media.thumbnail_sizes.forEach((size, i) => {
    const ok = isPlainObject(size) && Number.isInteger(size.width) && size.width > 0 && Number.isInteger(size.height) && size.height > 0 && (size.method === 'crop' || size.method === 'scale');
    if (!ok) throw new ConfigError(`media.thumbnail_sizes[${i}] must be { width, height, method: crop | scale } with positive integer sizes`);
  });
}

/**
 * Builds the config from YAML text (may be empty) and the environment.
 * `server_name` may come from either; the defaults depend on it and on data_dir.
 */
export function buildConfig(yamlText: string, env: NodeJS.ProcessEnv = {}): AtriumConfig {
  const fromFile: unknown = yamlText.trim() ? parseYaml(yamlText) : {};
  if (!isPlainObject(fromFile)) throw new ConfigError('the config file must be a YAML mapping');
  const serverName = env.ATRIUM_SERVER_NAME ?? (typeof fromFile.server_name === 'string' ? fromFile.server_name : '');
  const dataDir = env.ATRIUM_DATA_DIR ?? (typeof fromFile.data_dir === 'string' ? fromFile.data_dir : './data');
  const defaults = defaultConfig(serverName, dataDir) as unknown as Plain;
  const merged = overlay(overlay(defaults, fromFile, '', FREE_FORM), envOverrides(env, defaults), '', FREE_FORM);
  return validate(merged as unknown as AtriumConfig);
}

/** Reads the YAML file at `path` and applies the environment. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): AtriumConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  return buildConfig(text, env);
}
