import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startFerretDb, startNats, startRedis, type TestCa } from '@atrium/test-servers';
import { freePort, servedBy, waitForHttp } from './ports';
import { REPO_ROOT, startNodeProcess, type ManagedProcess } from './process';
import { startRouter } from './router';

export type Mode = 'embedded' | 'cluster';

export interface TestServer {
  mode: Mode;
  serverName: string;
  /**
   * Where other servers reach it: `https://127.0.0.1:<port>` when started with `federationTls`,
   * else the plain-HTTP federation listener (embedded) or undefined (cluster without TLS).
   */
  federationUrl?: string;
  /** Where clients connect (in cluster mode, the path router in front of the services). */
  baseUrl: string;
  /** Direct URLs of each service process (cluster) or of the one process (embedded, key `atrium`). */
  services: Record<string, string>;
  processes: ManagedProcess[];
  /** Its atrium.yaml (as generated, with `config` laid over; ATRIUM_* environment overrides not included). */
  configPath: string;
  /** Runs the homeserver CLI (e.g. `register-user … --admin`) against this server's config and storage; resolves to its output. */
  cli(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Asynchronous: the cluster's router runs in the test process, so a blocking child would stall (and reset) its connections. */
function runCli(configPath: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(REPO_ROOT, 'dist/apps/homeserver/src/main.js'), ...args, '--config', configPath], { cwd: REPO_ROOT, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export interface TestServerOptions {
  /** Extra ATRIUM_* environment (e.g. rate limits, registration mode). */
  env?: Record<string, string>;
  /** OTLP/HTTP endpoint for traces. */
  otlpEndpoint?: string;
  /** Cluster mode: how many processes run each app (default 1); the router spreads requests over them in turn. */
  replicas?: Partial<Record<(typeof CLUSTER_APPS)[number], number>>;
  /**
   * Federation over TLS on loopback, for the interop suites: the server name becomes
   * `127.0.0.1:<federation port>` (an IP literal with a port needs no DNS or .well-known,
   * server-server-api "Resolving server names" steps 1-2), the federation listener (embedded) or
   * the router's federation port (cluster, standing in for the TLS-terminating proxy) serves a
   * certificate this CA issued, outgoing federation trusts the CA (`federation.trusted_ca_paths`)
   * and loopback is exempted from the IP blocklist (`federation.ip_range_allowlist`).
   */
  federationTls?: TestCa;
  /** Overrides the generated server name (default `localhost:<port>`, or the IP literal above with `federationTls`). */
  serverName?: string;
  /** Laid over the generated atrium.yaml, section by section (e.g. `{ federation: { trusted_key_servers: [...] } }`). */
  config?: Record<string, unknown>;
}

export const CLUSTER_APPS = ['client-api', 'federation-inbound', 'federation-outbound', 'key-server', 'media-repo', 'push-gateway', 'room-server'] as const;

/** Writes a config and signing key with the real CLI, as an operator would. */
function generateConfig(dir: string, serverName: string, clientPort: number, federationPort: number): string {
  const configPath = join(dir, 'atrium.yaml');
  execFileSync(process.execPath, [
    join(REPO_ROOT, 'dist/apps/homeserver/src/main.js'), 'generate-config',
    '--server-name', serverName, '--config', configPath, '--data-dir', join(dir, 'data'),
    '--client-port', String(clientPort), '--federation-port', String(federationPort),
    '--registration', 'open',
  ], { cwd: REPO_ROOT, stdio: 'pipe' });
  return configPath;
}

/** Deep-merges `patch` into `base` (plain objects merged key by key; anything else replaced). */
function mergeConfig(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const current = out[key];
    const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = isMap(current) && isMap(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

/** Lays `options.config` over the written config file. */
function applyExtraConfig(configPath: string, options: TestServerOptions): void {
  if (!options.config) return;
  const written = (parseYaml(readFileSync(configPath, 'utf8')) ?? {}) as Record<string, unknown>;
  writeFileSync(configPath, stringifyYaml(mergeConfig(written, options.config)));
}

/**
 * Environment for federation over TLS with the suite's test CA (see `federationTls`): a
 * certificate for the server name, the CA trusted, loopback allowed. Empty without it.
 */
function federationEnv(options: TestServerOptions, serverName: string): Record<string, string> {
  if (!options.federationTls) return {};
  const { certPath, keyPath } = options.federationTls.issue([serverName]);
  return {
    ATRIUM_LISTENERS__FEDERATION__TLS_CERTIFICATE_PATH: certPath,
    ATRIUM_LISTENERS__FEDERATION__TLS_PRIVATE_KEY_PATH: keyPath,
    ATRIUM_FEDERATION__TRUSTED_CA_PATHS: JSON.stringify([options.federationTls.certPath]),
    ATRIUM_FEDERATION__IP_RANGE_ALLOWLIST: JSON.stringify(['127.0.0.1/32', '::1/128']),
  };
}

function defaultServerName(options: TestServerOptions, port: number): string {
  return options.serverName ?? (options.federationTls ? `127.0.0.1:${port}` : `localhost:${port}`);
}

function baseEnv(options: TestServerOptions): Record<string, string> {
  const env: Record<string, string> = {
    ATRIUM_TELEMETRY__LOG_LEVEL: 'warn',
    ATRIUM_REGISTRATION__ALLOW_GUESTS: 'true',
    ...options.env,
  };
  if (options.otlpEndpoint) env.ATRIUM_TELEMETRY__OTLP_ENDPOINT = options.otlpEndpoint;
  return env;
}

async function failWithOutput(processes: ManagedProcess[], err: unknown): Promise<never> {
  const logs = processes.map((p) => `--- ${p.name} ---\n${p.output().slice(-4000)}`).join('\n');
  await Promise.all(processes.map((p) => p.stop()));
  throw new Error(`${(err as Error).message}\n${logs}`);
}

export async function startEmbeddedServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'atrium-e2e-'));
  const clientPort = await freePort();
  const federationPort = await freePort();
  const serverName = defaultServerName(options, federationPort);
  const configPath = generateConfig(dir, serverName, clientPort, federationPort);
  applyExtraConfig(configPath, options);
  const proc = startNodeProcess('atrium', 'dist/apps/homeserver/src/main.js', ['start', '--config', configPath], {
    ...baseEnv(options),
    ...federationEnv(options, serverName),
    ATRIUM_PUBLIC_BASEURL: `http://127.0.0.1:${clientPort}/`,
    ATRIUM_LISTENERS__CLIENT__HOST: '127.0.0.1',
    ATRIUM_LISTENERS__FEDERATION__HOST: '127.0.0.1',
  });
  const baseUrl = `http://127.0.0.1:${clientPort}`;
  try {
    await waitForHttp(`${baseUrl}/health`, 30_000, proc.alive);
    if (!(await servedBy(baseUrl, proc.child.pid))) throw new Error(`${baseUrl} is answered by another process (port taken after freePort picked it)`);
  } catch (err) {
    await failWithOutput([proc], err);
  }
  const federationUrl = `${options.federationTls ? 'https' : 'http'}://127.0.0.1:${federationPort}`;
  return {
    mode: 'embedded',
    serverName,
    federationUrl,
    baseUrl,
    services: { atrium: baseUrl, federation: federationUrl },
    processes: [proc],
    configPath,
    cli: (args) => runCli(configPath, args),
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The cluster mode, for real: NATS JetStream, Redis and FerretDB (MongoDB wire
 * protocol) as servers, and every app as its own process, with a path router
 * in front standing in for the reverse proxy.
 */
export async function startClusterServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'atrium-e2e-cluster-'));
  const [nats, redis, ferret] = await Promise.all([startNats(), startRedis(), startFerretDb()]);
  const ports: Record<string, number[]> = {};
  for (const app of CLUSTER_APPS) {
    ports[app] = [];
    for (let i = 0; i < (options.replicas?.[app] ?? 1); i++) ports[app].push(await freePort());
  }
  // Without TLS no one listens on this port (the name only has to be unique); with it the router's
  // TLS listener does, as the reverse proxy terminating federation TLS would.
  const federationPort = await freePort();
  const serverName = defaultServerName(options, federationPort);
  const configPath = generateConfig(dir, serverName, 0, 0);
  applyExtraConfig(configPath, options);
  const fedEnv = federationEnv(options, serverName);
  const dbName = `atrium_${Date.now().toString(36)}`;
  const processes: ManagedProcess[] = [];
  const processPorts = new Map<ManagedProcess, number>();
  const router = await startRouter(ports, options.federationTls
    ? { port: federationPort, certPath: fedEnv.ATRIUM_LISTENERS__FEDERATION__TLS_CERTIFICATE_PATH, keyPath: fedEnv.ATRIUM_LISTENERS__FEDERATION__TLS_PRIVATE_KEY_PATH }
    : undefined);
  // One app process on ports[app][replica], ready and really the one answering there. A port
  // freePort picked can be taken by another process before the app binds it: the app then exits,
  // and the other process may even answer its readiness checks (the likely cause of a CI run in
  // which Synapse's federation requests got 404 M_UNRECOGNIZED from the cluster). It is started again on
  // a new port (the router reads `ports` per request), at most three times.
  const startApp = async (app: (typeof CLUSTER_APPS)[number], replica: number): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const port = ports[app][replica];
      const proc = startNodeProcess(replica === 0 ? app : `${app}#${replica + 1}`, `dist/apps/${app}/src/main.js`, ['--config', configPath], {
        ...baseEnv(options),
        ...fedEnv,
        ATRIUM_STORAGE__URL: `${ferret.url.replace(/\/$/, '')}/${dbName}`,
        ATRIUM_BUS__URL: nats.url,
        ATRIUM_CACHE__URL: redis.url,
        ATRIUM_LISTENERS__SERVICE__HOST: '127.0.0.1',
        ATRIUM_LISTENERS__SERVICE__PORT: String(port),
        ATRIUM_PUBLIC_BASEURL: `${router.url}/`,
      });
      processes.push(proc);
      processPorts.set(proc, port);
      try {
        await waitForHttp(`http://127.0.0.1:${port}/ready`, 150_000, proc.alive);
      } catch (err) {
        // Exited during start-up (a port taken meanwhile fails its listen): once more on another port.
        if (proc.alive() || attempt >= 3) throw err;
      }
      if (proc.alive() && (await servedBy(`http://127.0.0.1:${port}`, proc.child.pid))) return;
      if (attempt >= 3) throw new Error(`${proc.name}: port ${port} is answered by another process`);
      await proc.stop();
      processes.splice(processes.indexOf(proc), 1);
      processPorts.delete(proc);
      ports[app][replica] = await freePort();
    }
  };
  try {
    await Promise.all(CLUSTER_APPS.flatMap((app) => ports[app].map((_, replica) => startApp(app, replica))));
  } catch (err) {
    await router.stop();
    await Promise.all([nats.stop(), redis.stop(), ferret.stop()]);
    await failWithOutput(processes, err);
  }
  return {
    mode: 'cluster',
    serverName,
    federationUrl: router.federationUrl,
    baseUrl: router.url,
    services: Object.fromEntries(processes.map((p) => [p.name, `http://127.0.0.1:${processPorts.get(p)}`])),
    processes,
    configPath,
    cli: (args) => runCli(configPath, args, { ATRIUM_STORAGE__URL: `${ferret.url.replace(/\/$/, '')}/${dbName}` }),
    async stop() {
      await Promise.all(processes.map((p) => p.stop()));
      await router.stop();
      await Promise.all([nats.stop(), redis.stop(), ferret.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function startTestServer(mode: Mode, options: TestServerOptions = {}): Promise<TestServer> {
  return mode === 'embedded' ? startEmbeddedServer(options) : startClusterServer(options);
}
