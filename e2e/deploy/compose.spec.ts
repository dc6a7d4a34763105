/**
 * docker-compose.yml, deploy/nginx.conf, deploy/atrium.cluster.yaml and
 * deploy/otel-collector.yaml, checked against each other (no Docker engine is
 * needed): every app is a service, the proxy routes like deploy/routes.yaml,
 * the config loads with @atrium/config and points at services that exist.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '@atrium/config';
import {
  CLUSTER_APPS,
  EXPECTED_ROUTING,
  loadReferenceRoutes,
  type NginxDirective,
  nginxLocations,
  parseNginx,
  repoRoot,
  resolveLongestPrefix,
  resolveNginx,
  ROUTED_APPS,
  samplePaths,
} from './routing';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
  restart?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

const read = (...p: string[]): string => readFileSync(join(repoRoot, ...p), 'utf8');
// Compose files use YAML merge keys (`<<: *anchor`).
const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as ComposeFile;
const nginx = parseNginx(read('deploy', 'nginx.conf'));
const clusterYaml = read('deploy', 'atrium.cluster.yaml');

function block(directives: NginxDirective[], name: string): NginxDirective[] {
  const found = directives.filter((d) => d.name === name);
  if (found.length === 0) throw new Error(`nginx.conf has no ${name} block`);
  return found;
}

const http = block(nginx, 'http')[0];
const servers = block(http.block!, 'server');
/** nginx upstream name → compose host:port. */
const upstreams = new Map(
  block(http.block!, 'upstream').map((u) => [u.args[0], u.block!.filter((d) => d.name === 'server').map((d) => d.args[0])]),
);

/** Compose `volumes:` entries as source → target. */
function mounts(service: ComposeService): Map<string, string> {
  return new Map(
    (service.volumes ?? []).map((v) => {
      const [source, target] = v.split(':');
      return [target, source];
    }),
  );
}

/** The shell command of the init service (entrypoint `sh -c`). */
function initScript(): string {
  const init = compose.services.init as ComposeService & { entrypoint?: string[] };
  expect(init.entrypoint).toEqual(['/bin/sh', '-c']);
  expect(init.command).toHaveLength(1);
  return init.command![0];
}

function hostOf(url: string): string {
  return new URL(url).hostname;
}

describe('docker-compose.yml', () => {
  it.each(CLUSTER_APPS)('runs %s from the Dockerfile image with the cluster config and the signing key volume', (app) => {
    const service = compose.services[app];
    expect(service).toBeDefined();
    expect(service.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
    expect(service.command).toEqual([app, '--config', '/etc/atrium/atrium.yaml']);
    const m = mounts(service);
    expect(m.get('/etc/atrium/atrium.yaml')).toBe('./deploy/atrium.cluster.yaml');
    expect(m.get('/etc/atrium/keys')).toBe('atrium-keys');
    expect(service.volumes).toContain('atrium-keys:/etc/atrium/keys:ro');
  });

  it.each(CLUSTER_APPS)('%s has a /health healthcheck and waits for init and healthy dependencies', (app) => {
    const service = compose.services[app];
    expect(service.healthcheck?.test).toEqual(['CMD', 'atrium-healthcheck', '/health']);
    expect(service.depends_on).toMatchObject({
      init: { condition: 'service_completed_successfully' },
      mongodb: { condition: 'service_healthy' },
      nats: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
  });

  it('every service but the one-shot init and the tracing pair has a healthcheck', () => {
    const without = Object.entries(compose.services)
      .filter(([, s]) => !s.healthcheck)
      .map(([name]) => name)
      .sort();
    // The collector and Jaeger images have no shell or HTTP client to run one.
    expect(without).toEqual(['init', 'jaeger', 'otel-collector']);
  });

  it('runs the dependencies: MongoDB 7 as a replica set, NATS 2 with JetStream on a volume, Redis 7', () => {
    const { mongodb, nats, redis } = compose.services;
    expect(mongodb.image).toBe('mongo:7');
    expect(mongodb.command).toEqual(expect.arrayContaining(['--replSet', 'rs0']));
    expect(mongodb.healthcheck?.test.join(' ')).toContain("rs.initiate({ _id: 'rs0', members: [{ _id: 0, host: 'mongodb:27017' }] })");
    expect(nats.image).toMatch(/^nats:2(-|$)/);
    expect(nats.command).toContain('-js');
    const storeDir = nats.command![nats.command!.indexOf('-sd') + 1];
    expect(mounts(nats).get(storeDir)).toBe('nats-data');
    expect(redis.image).toBe('redis:7');
  });

  it('the one-shot init writes the signing key where the services read it', () => {
    const init = compose.services.init;
    const config = buildConfig(clusterYaml, {});
    const keyDir = config.signing_key_path.slice(0, config.signing_key_path.lastIndexOf('/'));
    expect(init.restart).toBe('no');
    expect(init.volumes).toEqual([`atrium-keys:${keyDir}`]);
    expect(initScript()).toContain(`test -s ${config.signing_key_path} ||`);
    expect(initScript()).toContain(`--data-dir ${keyDir}`);
  });

  it('the init command makes a valid key with the real homeserver CLI, and keeps it on the next run', () => {
    // The compose command, run on this machine: the volume is a temp folder,
    // atrium-entrypoint is deploy/docker/entrypoint.sh over the dist/ that the
    // e2e global setup builds.
    const keyDir = buildConfig(clusterYaml, {}).signing_key_path.replace(/\/[^/]+$/, '');
    const work = mkdtempSync(join(tmpdir(), 'atrium-init-'));
    try {
      const script = initScript()
        .replace(/\$\$/g, '$')
        .split(keyDir).join(join(work, 'keys'))
        .split('/tmp/generated.yaml').join(join(work, 'generated.yaml'))
        .replace('exec atrium-entrypoint', `exec sh ${join(repoRoot, 'deploy', 'docker', 'entrypoint.sh')}`);
      const env = { PATH: process.env.PATH ?? '', ATRIUM_DIST: join(repoRoot, 'dist'), ATRIUM_SERVER_NAME: 'localhost' };
      const first = spawnSync('sh', ['-c', script], { env, encoding: 'utf8', timeout: 30_000 });
      if (first.status !== 0) throw new Error(`the init command failed (${String(first.status)}):\n${first.stderr.slice(-1500)}`);
      const keyFile = join(work, 'keys', 'signing.key');
      const key = readFileSync(keyFile, 'utf8');
      expect(key).toMatch(/^ed25519 [A-Za-z0-9_]+ [A-Za-z0-9+/]{43}\n?$/);
      const second = spawnSync('sh', ['-c', script], { env, encoding: 'utf8', timeout: 30_000 });
      expect(second.status).toBe(0);
      expect(readFileSync(keyFile, 'utf8')).toBe(key);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('declares every named volume it uses', () => {
    const used = Object.values(compose.services).flatMap((s) =>
      (s.volumes ?? []).map((v) => v.split(':')[0]).filter((source) => !source.startsWith('.') && !source.startsWith('/')),
    );
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(Object.keys(compose.volumes)).toContain(name);
  });

  it('mounts files that exist in the repository', () => {
    for (const service of Object.values(compose.services)) {
      for (const v of service.volumes ?? []) {
        const source = v.split(':')[0];
        if (source.startsWith('./')) expect(() => readFileSync(join(repoRoot, source))).not.toThrow();
      }
    }
  });

  it('publishes the proxy on 8008 and 8448 and Jaeger on 16686, waiting for the routed apps', () => {
    const proxy = compose.services.proxy;
    expect(proxy.image).toMatch(/^nginx:/);
    expect(proxy.ports).toEqual(['8008:8008', '8448:8448']);
    expect(mounts(proxy).get('/etc/nginx/nginx.conf')).toBe('./deploy/nginx.conf');
    expect(proxy.healthcheck?.test.join(' ')).toContain('/health');
    expect(Object.keys(proxy.depends_on as Record<string, unknown>).sort()).toEqual([...ROUTED_APPS].sort());
    expect(compose.services.jaeger.image).toMatch(/^jaegertracing\/all-in-one:/);
    expect(compose.services.jaeger.ports).toContain('16686:16686');
  });
});

describe('deploy/atrium.cluster.yaml', () => {
  it('loads with @atrium/config, with the environment compose gives every app', () => {
    const env = Object.fromEntries(
      Object.entries(compose.services['client-api'].environment ?? {}).map(([k, v]) => [k, v.replace(/\$\{(\w+):-([^}]*)\}/g, '$2')]),
    );
    const config = buildConfig(clusterYaml, env);
    expect(config.server_name).toBe('localhost');
    expect(config.listeners.service.port).toBe(8080);
    expect(config.registration.mode).toBe('closed');
    expect(config.signing_key_path).toBe('/etc/atrium/keys/signing.key');
  });

  it('points storage, bus, cache and traces at compose services', () => {
    const config = buildConfig(clusterYaml, {});
    expect(config.storage.url).toMatch(/^mongodb:\/\/.*replicaSet=rs0/);
    expect(config.bus.url).toMatch(/^nats:\/\//);
    expect(config.cache.url).toMatch(/^redis:\/\//);
    for (const url of [config.storage.url, config.bus.url, config.cache.url, config.telemetry.otlp_endpoint!]) {
      expect(Object.keys(compose.services)).toContain(hostOf(url));
    }
  });

  it('sends traces to the collector OTLP/HTTP receiver, which exports to Jaeger', () => {
    const config = buildConfig(clusterYaml, {});
    const collector = parseYaml(read('deploy', 'otel-collector.yaml')) as {
      receivers: { otlp: { protocols: { http: { endpoint: string } } } };
      exporters: Record<string, { endpoint?: string }>;
      service: { pipelines: { traces: { receivers: string[]; exporters: string[] } } };
    };
    const otlpPort = new URL(config.telemetry.otlp_endpoint!).port;
    expect(collector.receivers.otlp.protocols.http.endpoint).toBe(`0.0.0.0:${otlpPort}`);
    const pipeline = collector.service.pipelines.traces;
    expect(pipeline.receivers).toContain('otlp');
    const exporterEndpoints = pipeline.exporters.map((e) => collector.exporters[e]?.endpoint);
    expect(exporterEndpoints).toContain('jaeger:4317');
    const collectorService = compose.services['otel-collector'];
    expect(collectorService.image).toMatch(/^otel\/opentelemetry-collector-contrib:/);
    const configPath = collectorService.command![0].replace('--config=', '');
    expect(mounts(collectorService).get(configPath)).toBe('./deploy/otel-collector.yaml');
  });
});

describe('deploy/nginx.conf', () => {
  const locations = nginxLocations(servers[0]);

  it('has one server listening on 8008 and 8448', () => {
    expect(servers).toHaveLength(1);
    const listens = servers[0].block!.filter((d) => d.name === 'listen').map((d) => d.args[0]);
    expect(listens.sort()).toEqual(['8008', '8448']);
  });

  it('proxies to the routed apps on the port of deploy/atrium.cluster.yaml', () => {
    const port = buildConfig(clusterYaml, {}).listeners.service.port;
    const targets = new Set<string>();
    for (const l of locations) {
      expect(l.proxyPass).toMatch(/^http:\/\/\w+$/);
      const upstream = upstreams.get(l.proxyPass!.slice('http://'.length));
      expect(upstream).toBeDefined();
      for (const server of upstream!) targets.add(server);
    }
    expect([...targets].sort()).toEqual(ROUTED_APPS.map((a) => `${a}:${port}`).sort());
    for (const target of targets) expect(Object.keys(compose.services)).toContain(target.split(':')[0]);
  });

  it('has exactly the locations of deploy/routes.yaml, as plain prefixes', () => {
    const reference = loadReferenceRoutes();
    expect(locations.every((l) => l.modifier === '')).toBe(true);
    expect(locations.map((l) => l.pattern).sort()).toEqual(reference.map((r) => r.path).sort());
  });

  it('sends every path to the app the routing table names', () => {
    const reference = loadReferenceRoutes();
    const appOf = (path: string): string | undefined => {
      const location = resolveNginx(locations, path);
      const upstream = upstreams.get(location?.proxyPass?.slice('http://'.length) ?? '');
      return upstream?.[0].split(':')[0];
    };
    for (const path of samplePaths(reference)) {
      expect({ path, app: appOf(path) }).toEqual({ path, app: resolveLongestPrefix(reference, path) });
    }
    for (const [path, app] of EXPECTED_ROUTING) {
      expect({ path, app: appOf(path) }).toEqual({ path, app });
    }
  });
});
