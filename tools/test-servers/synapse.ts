/**
 * Starts a real Synapse (the reference Matrix homeserver, installed in
 * .tools/synapse-venv by scripts/install-synapse.sh) as a process on loopback,
 * for the federation interop suite (e2e/interop).
 *
 * Its server name is an IP literal with a port, `127.0.0.1:<federation port>`:
 * server-server-api "Resolving server names" step 1 (IP literal) and 2
 * (explicit port) connect straight to it, with no DNS or .well-known lookup.
 * The federation listener serves TLS with a certificate from the suite's test
 * CA, which Synapse also trusts for its own outgoing requests
 * (`federation_custom_ca_list`); loopback is exempted from its IP blocklist.
 * Storage is SQLite, rate limits are off, and users are registered through
 * the shared-secret admin API (no open registration).
 *
 * Start-up, spawn to both listeners answering (measured on the 2-core
 * machine, SQLite schema created from scratch): 2.3 s idle, 10 s at load
 * average 14 (most of it importing Python modules). Suites start one Synapse
 * per test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpsJson } from './https-json';
import { freePort, repoRoot, stopChild, tempDir } from './process';
import type { TestCa } from './test-ca';

export interface SynapseOptions {
  /** The suite's test CA: issues the federation certificate, and is trusted for outgoing federation. */
  ca: TestCa;
  /**
   * Top-level homeserver.yaml keys laid over the generated ones (e.g. `{ presence: { enabled: false } }`,
   * `{ allow_public_rooms_over_federation: true }`).
   */
  extraConfig?: Record<string, unknown>;
  /** Default 60 s (the first start on a loaded machine compiles Python bytecode). */
  startTimeoutMs?: number;
}

export interface SynapseUser {
  userId: string;
  accessToken: string;
  deviceId: string;
  password: string;
}

export interface SynapseServer {
  /** `127.0.0.1:<federation port>` */
  serverName: string;
  /** The plain HTTP client listener, `http://127.0.0.1:<port>` (client API and /_synapse/admin). */
  clientUrl: string;
  /** The TLS federation listener, `https://127.0.0.1:<federation port>` (federation and key APIs). */
  federationUrl: string;
  /** Its config, data and signing key (removed by stop()). */
  dir: string;
  /** Its log (stdout and stderr); kept after stop() for a failed test to be read, in `synapseLogDir()`. */
  logPath: string;
  /** The last `chars` characters of its log. */
  logTail(chars?: number): string;
  /** Milliseconds from spawn to answering on both listeners. */
  startMs: number;
  /** Registers `localpart` through the shared-secret admin API (HMAC-SHA1 over nonce, user, password, admin flag). */
  registerUser(localpart: string, password: string, admin?: boolean): Promise<SynapseUser>;
  /** SIGTERM (SIGKILL after 5 s); removes its data dir, keeps its log. */
  stop(): Promise<void>;
}

/** Where Synapse's logs are kept (logs older than a day are removed at each start). */
export function synapseLogDir(): string {
  return join(tmpdir(), 'atrium-synapse-logs');
}

/** The venv's Python (`$ATRIUM_SYNAPSE_PYTHON` overrides it). */
export function synapsePython(): string {
  return process.env.ATRIUM_SYNAPSE_PYTHON ?? join(repoRoot(), '.tools/synapse-venv/bin/python');
}

const START_TIMEOUT_MS = 60_000;
/** Attempts when another process takes a probed port before Synapse binds it. */
const PORT_ATTEMPTS = 4;
const INSTALL_HINT = 'run `bash scripts/install-synapse.sh` (or set ATRIUM_SYNAPSE_PYTHON to a Python with matrix-synapse)';
/** Far above anything a test sends: the suite measures behaviour, not Synapse's limits. */
const UNLIMITED = { per_second: 10_000, burst_count: 100_000 };

/**
 * Python logging dictConfig: INFO to stderr (Synapse logs only warnings without one), which
 * shows each federation request in and out; SQL statements stay out.
 */
const LOG_CONFIG = {
  version: 1,
  formatters: { plain: { format: '%(asctime)s %(name)s %(levelname)s %(message)s' } },
  handlers: { console: { class: 'logging.StreamHandler', formatter: 'plain' } },
  loggers: { 'synapse.storage.SQL': { level: 'WARNING' }, 'synapse.access.http': { level: 'INFO' } },
  root: { level: 'INFO', handlers: ['console'] },
  disable_existing_loggers: false,
};

/** A Synapse signing key file line: `ed25519 <version> <unpadded base64 of the 32-byte seed>`. */
function signingKeyLine(): string {
  const der = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' });
  // PKCS#8 for Ed25519 ends with the 32-byte seed.
  const seed = der.subarray(der.length - 32);
  return `ed25519 a_${randomBytes(3).toString('hex')} ${seed.toString('base64').replace(/=+$/, '')}\n`;
}

function homeserverConfig(dir: string, serverName: string, clientPort: number, federationPort: number, tls: { certPath: string; keyPath: string }, ca: TestCa, sharedSecret: string): Record<string, unknown> {
  return {
    server_name: serverName,
    log_config: join(dir, 'log.yaml'),
    pid_file: join(dir, 'homeserver.pid'),
    public_baseurl: `http://127.0.0.1:${clientPort}/`,
    listeners: [
      { port: federationPort, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, x_forwarded: false, resources: [{ names: ['federation'], compress: false }] },
      { port: clientPort, bind_addresses: ['127.0.0.1'], type: 'http', tls: false, x_forwarded: false, resources: [{ names: ['client'], compress: false }] },
    ],
    tls_certificate_path: tls.certPath,
    tls_private_key_path: tls.keyPath,
    federation_custom_ca_list: [ca.certPath],
    federation_verify_certificates: true,
    // Loopback is in Synapse's default blocklist; the whitelist exempts it for outgoing federation.
    ip_range_whitelist: ['127.0.0.1', '::1'],
    // Synapse blocks IP-literal server names by this list alone (its BlocklistingAgentWrapper ignores
    // the whitelist), so the federation list is emptied (0.0.0.0 and :: stay blocked regardless).
    federation_ip_range_blacklist: [],
    database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
    media_store_path: join(dir, 'media'),
    signing_key_path: join(dir, 'signing.key'),
    // Keys are fetched from the origin itself (no matrix.org notary: there is no network).
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    report_stats: false,
    registration_shared_secret: sharedSecret,
    enable_registration: false,
    enable_registration_without_verification: true,
    macaroon_secret_key: randomBytes(24).toString('hex'),
    form_secret: randomBytes(24).toString('hex'),
    presence: { enabled: true },
    use_presence: true,
    allow_public_rooms_over_federation: true,
    allow_public_rooms_without_auth: true,
    alias_creation_rules: [{ user_id: '*', alias: '*', room_id: '*', action: 'allow' }],
    room_list_publication_rules: [{ user_id: '*', alias: '*', room_id: '*', action: 'allow' }],
    user_directory: { enabled: true, search_all_users: true },
    url_preview_enabled: false,
    // Synapse answers a repeated identical /sync from a cache for 2 minutes by default, so a test
    // polling an initial sync would never see a change; 0 caches only requests still in flight.
    caches: { sync_response_cache_duration: 0 },
    enable_metrics: false,
    rc_message: UNLIMITED,
    rc_registration: UNLIMITED,
    rc_login: { address: UNLIMITED, account: UNLIMITED, failed_attempts: UNLIMITED },
    rc_admin_redaction: UNLIMITED,
    rc_joins: { local: UNLIMITED, remote: UNLIMITED },
    rc_joins_per_room: UNLIMITED,
    rc_invites: { per_room: UNLIMITED, per_user: UNLIMITED, per_issuer: UNLIMITED },
    rc_3pid_validation: UNLIMITED,
    rc_third_party_invite: UNLIMITED,
    rc_media_create: UNLIMITED,
    rc_key_requests: UNLIMITED,
    rc_presence: { per_user: UNLIMITED },
    rc_delayed_event_mgmt: UNLIMITED,
    rc_room_creation: UNLIMITED,
    rc_reports: UNLIMITED,
    rc_profile: UNLIMITED,
    rc_user_directory: UNLIMITED,
    rc_federation: { window_size: 1000, sleep_limit: 10_000, sleep_delay: 500, reject_limit: 100_000, concurrent: 1000 },
  };
}

function pruneOldLogs(dir: string): void {
  const dayAgo = Date.now() - 24 * 3600_000;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (statSync(path).mtimeMs < dayAgo) rmSync(path, { force: true });
    } catch {
      // Another suite removed it first.
    }
  }
}

function tail(path: string, chars: number): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-chars);
  } catch {
    return '';
  }
}

/** Resolves once GET `url` answers 200; fails when the process exits or after `deadline`. */
async function waitFor(url: string, caPath: string, child: ChildProcess, deadline: number, logPath: string): Promise<void> {
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`synapse exited at start (code ${child.exitCode}, signal ${child.signalCode})`);
    try {
      const res = await httpsJson(url, { caPath, timeoutMs: 2_000 });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`synapse: ${url} did not answer in time (${last}); log ${logPath}`);
}

async function startOnce(options: SynapseOptions, python: string, logDir: string): Promise<SynapseServer> {
  const dir = tempDir('atrium-synapse-');
  const clientPort = await freePort();
  let federationPort = await freePort();
  while (federationPort === clientPort) federationPort = await freePort();
  const serverName = `127.0.0.1:${federationPort}`;
  const tls = options.ca.issue([serverName]);
  const sharedSecret = randomBytes(16).toString('hex');
  writeFileSync(join(dir.path, 'signing.key'), signingKeyLine(), { mode: 0o600 });
  writeFileSync(join(dir.path, 'log.yaml'), JSON.stringify(LOG_CONFIG));
  const config = { ...homeserverConfig(dir.path, serverName, clientPort, federationPort, tls, options.ca, sharedSecret), ...options.extraConfig };
  const configPath = join(dir.path, 'homeserver.yaml');
  // JSON is valid YAML, and PyYAML reads it: no YAML writer needed.
  writeFileSync(configPath, JSON.stringify(config, null, 2));

  const logPath = join(logDir, `synapse-${new Date().toISOString().replace(/[:.]/g, '-')}-${federationPort}.log`);
  const logFd = openSync(logPath, 'a');
  const started = Date.now();
  let child: ChildProcess;
  try {
    // Output straight to a file: nothing to drain, and the whole log survives the process.
    child = spawn(python, ['-m', 'synapse.app.homeserver', '--config-path', configPath], {
      cwd: dir.path,
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, PYTHONUNBUFFERED: '1', SYNAPSE_CACHE_FACTOR: '0.5' },
    });
  } finally {
    closeSync(logFd);
  }
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const federationUrl = `https://127.0.0.1:${federationPort}`;
  try {
    const deadline = started + (options.startTimeoutMs ?? START_TIMEOUT_MS);
    await waitFor(`${clientUrl}/health`, options.ca.certPath, child, deadline, logPath);
    await waitFor(`${federationUrl}/_matrix/federation/v1/version`, options.ca.certPath, child, deadline, logPath);
  } catch (err) {
    await stopChild(child);
    dir.remove();
    throw new Error(`${(err as Error).message}\n--- synapse log (${logPath}) ---\n${tail(logPath, 6_000)}`);
  }
  const startMs = Date.now() - started;

  return {
    serverName,
    clientUrl,
    federationUrl,
    dir: dir.path,
    logPath,
    startMs,
    logTail: (chars = 8_000) => tail(logPath, chars),
    async registerUser(localpart, password, admin = false) {
      const url = `${clientUrl}/_synapse/admin/v1/register`;
      const nonce = await httpsJson(url);
      if (nonce.status !== 200) throw new Error(`synapse register nonce: HTTP ${nonce.status} ${nonce.text}`);
      const mac = createHmac('sha1', sharedSecret)
        .update(`${nonce.json.nonce as string}\0${localpart}\0${password}\0${admin ? 'admin' : 'notadmin'}`)
        .digest('hex');
      const res = await httpsJson(url, { method: 'POST', body: { nonce: nonce.json.nonce, username: localpart, password, admin, mac } });
      if (res.status !== 200) throw new Error(`synapse register ${localpart}: HTTP ${res.status} ${res.text}`);
      return { userId: res.json.user_id as string, accessToken: res.json.access_token as string, deviceId: res.json.device_id as string, password };
    },
    async stop() {
      await stopChild(child);
      dir.remove();
    },
  };
}

export async function startSynapse(options: SynapseOptions): Promise<SynapseServer> {
  const python = synapsePython();
  if (!existsSync(python)) throw new Error(`no Synapse Python at ${python}: ${INSTALL_HINT}`);
  const logDir = synapseLogDir();
  mkdirSync(logDir, { recursive: true });
  pruneOldLogs(logDir);
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    try {
      return await startOnce(options, python, logDir);
    } catch (err) {
      lastError = err;
      // Only a lost race for a port is worth another try.
      if (!/Address already in use|CannotListenError/i.test(String(err))) break;
    }
  }
  throw lastError;
}
