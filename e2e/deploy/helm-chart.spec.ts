/**
 * helm/atrium, checked with the real Helm: lint, then `helm template` with the
 * default values and with overrides, parsing what it renders.
 */
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '@atrium/config';
import {
  appName,
  chartDir,
  containerEnv,
  deploymentSpec,
  type Manifest,
  named,
  NAMESPACE,
  ofKind,
  RELEASE,
  renderChart,
  renderFailure,
  runHelm,
  secretData,
} from './helm';
import {
  CLUSTER_APPS,
  EXPECTED_ROUTING,
  type IngressPath,
  loadReferenceRoutes,
  parseRoutes,
  repoRoot,
  resolveIngress,
  resolveLongestPrefix,
  ROUTED_APPS,
  samplePaths,
} from './routing';

const fullname = `${RELEASE}-atrium`;

function container(manifests: Manifest[], app: string) {
  const spec = deploymentSpec(named(manifests, 'Deployment', appName(app)));
  expect(spec.template.spec.containers).toHaveLength(1);
  return spec.template.spec.containers[0];
}

function configFile(manifests: Manifest[]): string {
  const data = named(manifests, 'ConfigMap', `${fullname}-config`).data as Record<string, string>;
  return data['atrium.yaml'];
}

function ingressPaths(manifests: Manifest[]): Map<string, IngressPath[]> {
  const ingress = named(manifests, 'Ingress', fullname);
  const spec = ingress.spec as { rules: Array<{ host: string; http: { paths: Array<{ path: string; pathType: IngressPath['pathType']; backend: { service: { name: string; port: { name?: string; number?: number } } } }> } }> };
  const byHost = new Map<string, IngressPath[]>();
  for (const rule of spec.rules) {
    byHost.set(
      rule.host,
      rule.http.paths.map((p) => ({ path: p.path, pathType: p.pathType, backend: p.backend.service.name })),
    );
  }
  return byHost;
}

describe('helm/atrium', () => {
  it('passes helm lint (strict), with default values and with every app scaled by hand', () => {
    const lint = runHelm(['lint', chartDir, '--strict']);
    expect(`${lint.stdout}${lint.stderr}`).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(lint.status).toBe(0);
    const sets = CLUSTER_APPS.flatMap((a) => ['--set', `apps.${a}.autoscaling.enabled=false`]);
    const lintNoHpa = runHelm(['lint', chartDir, '--strict', ...sets]);
    expect(lintNoHpa.status).toBe(0);
  });

  describe('with default values', () => {
    let manifests: Manifest[];
    beforeAll(() => {
      manifests = renderChart();
    });

    it('renders a Deployment and a Service for every cluster app, and nothing for the embedded homeserver', () => {
      const appsOnDisk = readdirSync(join(repoRoot, 'apps')).filter((a) => a !== 'homeserver').sort();
      expect([...CLUSTER_APPS].sort()).toEqual(appsOnDisk);
      expect(ofKind(manifests, 'Deployment').map((d) => d.metadata.name).sort()).toEqual(CLUSTER_APPS.map(appName).sort());
      expect(ofKind(manifests, 'Service').map((d) => d.metadata.name).sort()).toEqual(CLUSTER_APPS.map(appName).sort());
    });

    it.each(CLUSTER_APPS)('%s runs its own main.js from the one image with the mounted config', (app) => {
      const c = container(manifests, app);
      expect(c.command).toEqual(['node', `dist/apps/${app}/src/main.js`]);
      expect(c.args).toEqual(['--config', '/etc/atrium/atrium.yaml']);
      expect(c.image).toBe(`atrium:${String((parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion: string }).appVersion)}`);
      expect(c.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 8080 })]);
    });

    it.each(CLUSTER_APPS)('%s has liveness on /health, readiness on /ready, and resource requests and limits', (app) => {
      const c = container(manifests, app);
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/health', port: 'http' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'http' });
      expect(c.startupProbe?.httpGet?.path).toBe('/health');
      for (const kind of ['requests', 'limits'] as const) {
        expect(c.resources?.[kind]?.cpu).toMatch(/^\d+(\.\d+)?m?$/);
        expect(c.resources?.[kind]?.memory).toMatch(/^\d+(Mi|Gi)$/);
      }
    });

    it.each(CLUSTER_APPS)('%s Service selects exactly its own pods on port 8080', (app) => {
      const service = named(manifests, 'Service', appName(app));
      const spec = service.spec as { selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> };
      const deployment = deploymentSpec(named(manifests, 'Deployment', appName(app)));
      expect(spec.selector).toEqual(deployment.selector.matchLabels);
      expect(deployment.template.metadata.labels).toMatchObject(spec.selector);
      expect(spec.selector['app.kubernetes.io/component']).toBe(app);
      expect(spec.ports).toEqual([expect.objectContaining({ port: 8080, targetPort: 'http' })]);
    });

    it('gives HPAs (autoscaling/v2) to the stateless HTTP apps only, and leaves their replica count to them', () => {
      const hpas = ofKind(manifests, 'HorizontalPodAutoscaler');
      expect(hpas.map((h) => h.metadata.name).sort()).toEqual(ROUTED_APPS.map(appName).sort());
      for (const hpa of hpas) {
        expect((hpa as unknown as { apiVersion: string }).apiVersion).toBe('autoscaling/v2');
        const spec = hpa.spec as { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number; metrics: unknown[] };
        expect(spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: hpa.metadata.name });
        expect(spec.minReplicas).toBeGreaterThanOrEqual(1);
        expect(spec.maxReplicas).toBeGreaterThan(spec.minReplicas);
        expect(spec.metrics.length).toBeGreaterThan(0);
        expect(deploymentSpec(named(manifests, 'Deployment', hpa.metadata.name)).replicas).toBeUndefined();
      }
      for (const app of ['room-server', 'federation-outbound', 'push-gateway']) {
        expect(deploymentSpec(named(manifests, 'Deployment', appName(app))).replicas).toBeGreaterThanOrEqual(1);
      }
    });

    it('mounts the ConfigMap at /etc/atrium/atrium.yaml and the signing key Secret at the configured path', () => {
      const config = buildConfig(configFile(manifests), {});
      for (const app of CLUSTER_APPS) {
        const spec = deploymentSpec(named(manifests, 'Deployment', appName(app)));
        const c = spec.template.spec.containers[0];
        const volumes = new Map(spec.template.spec.volumes.map((v) => [v.name, v]));
        const configMount = c.volumeMounts?.find((m) => m.mountPath === '/etc/atrium/atrium.yaml');
        expect(configMount).toMatchObject({ subPath: 'atrium.yaml', readOnly: true });
        expect(volumes.get(configMount!.name)?.configMap?.name).toBe(`${fullname}-config`);

        const keyDir = config.signing_key_path.slice(0, config.signing_key_path.lastIndexOf('/'));
        const keyFile = config.signing_key_path.slice(keyDir.length + 1);
        const keyMount = c.volumeMounts?.find((m) => m.mountPath === keyDir);
        expect(keyMount?.readOnly).toBe(true);
        const keyVolume = volumes.get(keyMount!.name);
        expect(keyVolume?.secret?.secretName).toBe(`${fullname}-signing-key`);
        expect(keyVolume?.secret?.items).toEqual([{ key: 'signing.key', path: keyFile }]);
        // Every mount names a volume of the pod.
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name)).toBe(true);
        // A read-only root needs writable /tmp and data_dir.
        expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
        expect(c.volumeMounts?.map((m) => m.mountPath)).toEqual(expect.arrayContaining(['/tmp', config.data_dir]));
      }
      named(manifests, 'Secret', `${fullname}-signing-key`);
    });

    it('renders a config every app can load, with storage, bus and cache URLs from the Secret', () => {
      const connections = secretData(named(manifests, 'Secret', `${fullname}-connections`));
      for (const app of CLUSTER_APPS) {
        const env = containerEnv(container(manifests, app), manifests);
        const config = buildConfig(configFile(manifests), env);
        expect(config.server_name).toBe('example.org');
        expect(config.storage.url).toBe(connections['storage-url']);
        expect(config.storage.url).toMatch(/^mongodb:\/\//);
        expect(config.bus.url).toMatch(/^nats:\/\//);
        expect(config.cache.url).toMatch(/^redis:\/\//);
        expect(config.listeners.service.port).toBe(8080);
        expect(config.public_baseurl).toBe('https://matrix.example.org/');
        expect(config.well_known.server).toBe('matrix.example.org:443');
        expect(env.OTEL_SERVICE_NAME).toBe(`atrium-${app}`);
      }
    });

    it('generates a signing key that node:crypto accepts as an Ed25519 seed', () => {
      const file = secretData(named(manifests, 'Secret', `${fullname}-signing-key`))['signing.key'];
      const match = /^ed25519 (a_[A-Za-z0-9]{4}) ([A-Za-z0-9+/]{43})\n$/.exec(file);
      expect(match).not.toBeNull();
      const seed = Buffer.from(match![2], 'base64');
      expect(seed).toHaveLength(32);
      // RFC 8410 PKCS#8 wrapping of a raw Ed25519 seed.
      const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
      const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
      const signature = sign(null, Buffer.from('atrium'), privateKey);
      expect(verify(null, Buffer.from('atrium'), createPublicKey(privateKey), signature)).toBe(true);
      const { annotations } = named(manifests, 'Secret', `${fullname}-signing-key`).metadata;
      expect(annotations?.['helm.sh/resource-policy']).toBe('keep');
    });

    it('values.yaml routes are exactly deploy/routes.yaml', () => {
      const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as { routes: unknown };
      expect(parseRoutes(values.routes, 'values.yaml')).toEqual(loadReferenceRoutes());
    });

    it('the Ingress sends every path to the app the routing table names', () => {
      const reference = loadReferenceRoutes();
      const paths = ingressPaths(manifests).get('matrix.example.org');
      expect(paths).toBeDefined();
      expect(paths!.every((p) => p.pathType === 'Prefix')).toBe(true);
      for (const path of samplePaths(reference)) {
        const backend = resolveIngress(paths!, path);
        expect({ path, app: backend?.slice(`${fullname}-`.length) }).toEqual({ path, app: resolveLongestPrefix(reference, path) });
      }
      for (const [path, app] of EXPECTED_ROUTING) {
        expect({ path, backend: resolveIngress(paths!, path) }).toEqual({ path, backend: appName(app) });
      }
      const backends = new Set(paths!.map((p) => p.backend));
      expect([...backends].sort()).toEqual(ROUTED_APPS.map(appName).sort());
    });

    it('the Ingress has its class and TLS for the host', () => {
      const spec = named(manifests, 'Ingress', fullname).spec as { ingressClassName: string; tls: Array<{ hosts: string[]; secretName: string }> };
      expect(spec.ingressClassName).toBe('nginx');
      expect(spec.tls).toEqual([{ hosts: ['matrix.example.org'], secretName: 'atrium-tls' }]);
    });

    it('every pod runs as a non-root user under the chart ServiceAccount', () => {
      const sa = named(manifests, 'ServiceAccount', fullname);
      expect(sa).toBeDefined();
      for (const d of ofKind(manifests, 'Deployment')) {
        const pod = deploymentSpec(d).template.spec;
        expect(pod.serviceAccountName).toBe(fullname);
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      }
    });
  });

  describe('with overrides', () => {
    it('external URLs, OTLP endpoint and registration secret reach the config of every app', () => {
      const manifests = renderChart([
        'storage.url=mongodb://user:pw@mongo-0.db:27017/atrium?replicaSet=prod',
        'bus.url=nats://nats.messaging:4222',
        'cache.url=redis://cache.db:6380/2',
        'telemetry.otlpEndpoint=http://collector.observability:4318',
        'config.registration.sharedSecret=s3cret',
        'config.registration.mode=token',
        'serverName=chat.example.com',
      ]);
      for (const app of CLUSTER_APPS) {
        const env = containerEnv(container(manifests, app), manifests);
        const config = buildConfig(configFile(manifests), env);
        expect(config.storage.url).toBe('mongodb://user:pw@mongo-0.db:27017/atrium?replicaSet=prod');
        expect(config.bus.url).toBe('nats://nats.messaging:4222');
        expect(config.cache.url).toBe('redis://cache.db:6380/2');
        expect(config.telemetry.otlp_endpoint).toBe('http://collector.observability:4318');
        expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://collector.observability:4318');
        expect(config.registration.shared_secret).toBe('s3cret');
        expect(config.registration.mode).toBe('token');
        expect(config.server_name).toBe('chat.example.com');
      }
      // Credentials stay out of the ConfigMap.
      expect(configFile(manifests)).not.toContain('pw@');
      expect(configFile(manifests)).not.toContain('s3cret');
    });

    it('existing Secrets replace the chart Secret for URLs and the signing key', () => {
      const manifests = renderChart([
        'storage.existingSecret=db-creds',
        'storage.existingSecretKey=uri',
        'signingKey.existingSecret=matrix-key',
        'signingKey.existingSecretKey=key',
      ]);
      const connections = secretData(named(manifests, 'Secret', `${fullname}-connections`));
      expect(connections['storage-url']).toBeUndefined();
      expect(connections['bus-url']).toBe('nats://atrium-nats:4222');
      expect(manifests.some((m) => m.metadata.name === `${fullname}-signing-key`)).toBe(false);
      const external = { 'db-creds': { uri: 'mongodb://from-external-secret:27017/atrium' } };
      for (const app of CLUSTER_APPS) {
        const spec = deploymentSpec(named(manifests, 'Deployment', appName(app)));
        const env = containerEnv(spec.template.spec.containers[0], manifests, external);
        expect(buildConfig(configFile(manifests), env).storage.url).toBe('mongodb://from-external-secret:27017/atrium');
        const keyVolume = spec.template.spec.volumes.find((v) => v.secret);
        expect(keyVolume?.secret).toEqual({ secretName: 'matrix-key', defaultMode: 0o440, items: [{ key: 'key', path: 'signing.key' }] });
      }
    });

    it('a given signing key is stored as is', () => {
      const key = 'ed25519 a_test nOOagZ3zg1nbLQpk9lWIDtG8QGFjoEGK3x4pSLvZmFU';
      const manifests = renderChart([`signingKey.value=${key}`]);
      expect(secretData(named(manifests, 'Secret', `${fullname}-signing-key`))['signing.key']).toBe(`${key}\n`);
    });

    it('replica counts and autoscaling follow the values per app', () => {
      const manifests = renderChart([
        'apps.room-server.replicas=5',
        'apps.client-api.autoscaling.enabled=false',
        'apps.client-api.replicas=3',
        'apps.federation-outbound.autoscaling.enabled=true',
        'apps.federation-outbound.autoscaling.maxReplicas=7',
        'apps.media-repo.autoscaling.targetMemoryUtilizationPercentage=80',
      ]);
      expect(deploymentSpec(named(manifests, 'Deployment', appName('room-server'))).replicas).toBe(5);
      expect(deploymentSpec(named(manifests, 'Deployment', appName('client-api'))).replicas).toBe(3);
      const hpaNames = ofKind(manifests, 'HorizontalPodAutoscaler').map((h) => h.metadata.name);
      expect(hpaNames).not.toContain(appName('client-api'));
      expect(hpaNames).toContain(appName('federation-outbound'));
      const outbound = named(manifests, 'HorizontalPodAutoscaler', appName('federation-outbound')).spec as { maxReplicas: number };
      expect(outbound.maxReplicas).toBe(7);
      expect(deploymentSpec(named(manifests, 'Deployment', appName('federation-outbound'))).replicas).toBeUndefined();
      const media = named(manifests, 'HorizontalPodAutoscaler', appName('media-repo')).spec as { metrics: Array<{ resource: { name: string; target: { averageUtilization: number } } }> };
      expect(media.metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization])).toEqual([
        ['cpu', 70],
        ['memory', 80],
      ]);
    });

    it('resources per app come from the values', () => {
      const manifests = renderChart(['apps.room-server.resources.limits.memory=8Gi', 'apps.room-server.resources.requests.cpu=3']);
      const c = container(manifests, 'room-server');
      expect(c.resources?.limits?.memory).toBe('8Gi');
      expect(String(c.resources?.requests?.cpu)).toBe('3');
    });

    it('a disabled app renders nothing, and disabling a routed app is refused', () => {
      const manifests = renderChart(['apps.push-gateway.enabled=false']);
      expect(manifests.filter((m) => m.metadata.name === appName('push-gateway'))).toEqual([]);
      expect(ofKind(manifests, 'Deployment')).toHaveLength(CLUSTER_APPS.length - 1);
      expect(renderFailure(['apps.key-server.enabled=false'])).toContain('goes to app key-server, which is not enabled');
    });

    it('values.schema.json refuses values the apps could not use', () => {
      expect(renderFailure(['config.registration.mode=maybe'])).toContain("value must be one of 'open', 'token', 'closed'");
      expect(renderFailure(['apps.chat-bot.enabled=true'])).toContain("additional properties 'chat-bot' not allowed");
      expect(renderFailure(['apps.room-server.replicas=-1'])).toContain('/apps/room-server/replicas');
      expect(renderFailure(['serverName=not a name'])).toContain('/serverName');
      expect(renderFailure(['signingKey.value=rsa 1 abc'])).toContain('/signingKey/value');
    });

    it('a storage URL is required unless an existing Secret provides it', () => {
      expect(renderFailure(['storage.url='])).toContain('storage-url: set .url or .existingSecret');
    });

    it('extra hosts get the same routes; without an Ingress none is rendered', () => {
      const manifests = renderChart(['ingress.extraHosts[0]=example.org', 'ingress.host=matrix.example.org']);
      const byHost = ingressPaths(manifests);
      expect([...byHost.keys()]).toEqual(['matrix.example.org', 'example.org']);
      expect(byHost.get('example.org')).toEqual(byHost.get('matrix.example.org'));
      expect(resolveIngress(byHost.get('example.org')!, '/.well-known/matrix/server')).toBe(appName('federation-inbound'));
      const spec = named(manifests, 'Ingress', fullname).spec as { tls: Array<{ hosts: string[] }> };
      expect(spec.tls[0].hosts).toEqual(['matrix.example.org', 'example.org']);

      const without = renderChart(['ingress.enabled=false']);
      expect(ofKind(without, 'Ingress')).toEqual([]);
      expect(buildConfig(configFile(without), {}).public_baseurl).toBe('http://example.org:8008/');
    });

    it('config.extra merges into atrium.yaml and still loads', () => {
      const manifests = renderChart(['config.extra.key_validity_ms=86400000', 'config.extra.registration.allow_guests=true']);
      const config = buildConfig(configFile(manifests), {});
      expect(config.key_validity_ms).toBe(86400000);
      expect(config.registration.allow_guests).toBe(true);
      expect(config.registration.mode).toBe('closed');
    });

    it('a media volume given through extraVolumes replaces the data emptyDir', () => {
      const manifests = renderChart([
        'apps.media-repo.extraVolumes[0].name=media',
        'apps.media-repo.extraVolumes[0].persistentVolumeClaim.claimName=atrium-media',
        'apps.media-repo.extraVolumeMounts[0].name=media',
        'apps.media-repo.extraVolumeMounts[0].mountPath=/var/lib/atrium',
      ]);
      const spec = deploymentSpec(named(manifests, 'Deployment', appName('media-repo')));
      const mounts = spec.template.spec.containers[0].volumeMounts!.filter((m) => m.mountPath === '/var/lib/atrium');
      expect(mounts).toEqual([{ name: 'media', mountPath: '/var/lib/atrium' }]);
      expect(spec.template.spec.volumes.find((v) => v.name === 'media')?.persistentVolumeClaim).toEqual({ claimName: 'atrium-media' });
    });
  });

  it('NOTES.txt renders the apps, the URL and the signing key Secret', () => {
    // Helm renders NOTES.txt only on install (which needs a cluster); in a copy
    // of the chart a probe template includes it so `helm template` shows it.
    const copy = mkdtempSync(join(tmpdir(), 'atrium-chart-'));
    try {
      cpSync(chartDir, copy, { recursive: true });
      writeFileSync(
        join(copy, 'templates', 'zz-notes-probe.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "atrium/templates/NOTES.txt" . | quote }}\n',
      );
      const result = runHelm(['template', RELEASE, copy, '--namespace', NAMESPACE, '--show-only', 'templates/zz-notes-probe.yaml']);
      expect(result.stderr).toBe('');
      const notes = (parseYaml(result.stdout) as { data: { notes: string } }).data.notes;
      expect(notes).toContain('room-server (2 replicas)');
      expect(notes).toContain('client-api (HPA 2-10 replicas)');
      expect(notes).toContain('Clients: https://matrix.example.org/');
      expect(notes).toContain(`Signing key: Secret ${fullname}-signing-key`);
      expect(notes).toContain(`kubectl -n ${NAMESPACE} get secret ${fullname}-signing-key`);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
