/**
 * The examples in deploy/ (alerts, dashboard, k8s/) parse, agree with each
 * other and with what the Helm chart renders.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { buildConfig } from '@atrium/config';
import { appName, containerEnv, deploymentSpec, type Manifest, named, ofKind, renderChart, RELEASE } from './helm';
import { CLUSTER_APPS, repoRoot } from './routing';

const read = (...p: string[]): string => readFileSync(join(repoRoot, 'deploy', ...p), 'utf8');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string };
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}

/** Metric names a PromQL expression reads (identifiers followed by `{`, `[` or an operator, not functions or labels). */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b((?:atrium|kube)_[a-z0-9_]+)\b/g)) names.add(m[1]);
  return [...names];
}

const documentedMetrics = [...read('README.md').matchAll(/^\| `(atrium_[a-z0-9_]+)` \|/gm)].map((m) => m[1]);
/** A documented histogram also provides its _bucket, _count and _sum series. */
function isDocumented(name: string): boolean {
  if (name.startsWith('kube_')) return true;
  const base = name.replace(/_(bucket|count|sum)$/, '');
  return documentedMetrics.includes(name) || documentedMetrics.includes(base);
}

describe('deploy/prometheus/atrium-alerts.yaml', () => {
  const rules = parseYaml(read('prometheus', 'atrium-alerts.yaml')) as RuleFile;
  const all = rules.groups.flatMap((g) => g.rules);

  it('has the federation queue, p99 latency and readiness alerts, each complete', () => {
    const names = all.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['AtriumFederationQueueBacklog', 'AtriumRequestLatencyP99High', 'AtriumPodNotReady']));
    for (const rule of all) {
      expect(rule.expr.trim().length).toBeGreaterThan(0);
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(['info', 'warning', 'critical']).toContain(rule.labels.severity);
      expect(rule.annotations.summary.length).toBeGreaterThan(0);
    }
    expect(all.find((r) => r.alert === 'AtriumRequestLatencyP99High')!.expr).toContain('histogram_quantile(0.99');
  });

  it('reads only metrics documented in deploy/README.md (or kube-state-metrics)', () => {
    expect(documentedMetrics.length).toBeGreaterThanOrEqual(5);
    for (const rule of all) {
      const names = metricNames(rule.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) expect({ rule: rule.alert, name, documented: isDocumented(name) }).toEqual({ rule: rule.alert, name, documented: true });
    }
  });

  it('becomes a PrometheusRule as deploy/k8s/prometheus-rule.yaml describes', () => {
    const head = read('k8s', 'prometheus-rule.yaml');
    const headThroughSpec = head.slice(0, head.indexOf('\nspec:') + '\nspec:'.length);
    const body = read('prometheus', 'atrium-alerts.yaml')
      .split('\n')
      .map((line) => `  ${line}`)
      .join('\n');
    const rule = parseYaml(`${headThroughSpec}\n${body}`) as { kind: string; spec: RuleFile };
    expect(rule.kind).toBe('PrometheusRule');
    expect(rule.spec).toEqual(rules);
  });
});

describe('deploy/grafana/atrium-overview.json', () => {
  interface Panel {
    id: number;
    title: string;
    gridPos: { x: number; y: number; w: number; h: number };
    targets: Array<{ expr: string }>;
  }
  const dashboard = JSON.parse(read('grafana', 'atrium-overview.json')) as { uid: string; title: string; panels: Panel[] };

  it('has uniquely numbered panels on a 24-column grid that do not overlap', () => {
    expect(dashboard.uid).toBe('atrium-overview');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`)).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it('queries only documented metrics, and shows every one of them', () => {
    const used = new Set<string>();
    for (const p of dashboard.panels) {
      expect(p.targets.length).toBeGreaterThan(0);
      for (const t of p.targets) {
        for (const name of metricNames(t.expr)) {
          expect({ panel: p.title, name, documented: isDocumented(name) }).toEqual({ panel: p.title, name, documented: true });
          used.add(name.replace(/_(bucket|count|sum)$/, ''));
        }
      }
    }
    for (const name of documentedMetrics) expect(used).toContain(name);
  });
});

describe('deploy/k8s', () => {
  let manifests: Manifest[];
  beforeAll(() => {
    manifests = renderChart([], ['--values', join(repoRoot, 'deploy', 'k8s', 'values-production.yaml')]);
  });

  const externalSecrets = parseAllDocuments(read('k8s', 'external-secrets.yaml')).map(
    (d) => d.toJS() as { kind: string; spec: { target: { name: string }; data: Array<{ secretKey: string }> } },
  );

  it('values-production.yaml renders with every secret coming from the ExternalSecrets', () => {
    expect(externalSecrets.every((e) => e.kind === 'ExternalSecret')).toBe(true);
    // What the ExternalSecrets would create, with stand-in values.
    const provided: Record<string, Record<string, string>> = {};
    for (const e of externalSecrets) {
      provided[e.spec.target.name] = Object.fromEntries(e.spec.data.map((d) => [d.secretKey, `${d.secretKey}-value`]));
    }
    provided['atrium-connections-external']['storage-url'] = 'mongodb://db:27017/atrium?replicaSet=rs0';
    expect(ofKind(manifests, 'Secret')).toEqual([]);
    const configFile = (named(manifests, 'ConfigMap', `${RELEASE}-atrium-config`).data as Record<string, string>)['atrium.yaml'];
    for (const app of CLUSTER_APPS) {
      const spec = deploymentSpec(named(manifests, 'Deployment', appName(app)));
      // Every secretKeyRef resolves against the ExternalSecret targets.
      const env = containerEnv(spec.template.spec.containers[0], manifests, provided);
      const config = buildConfig(configFile, env);
      expect(config.storage.url).toBe('mongodb://db:27017/atrium?replicaSet=rs0');
      expect(config.registration.shared_secret).toBe('registration-shared-secret-value');
      const keySecret = spec.template.spec.volumes.find((v) => v.secret)!.secret!;
      expect(Object.keys(provided[keySecret.secretName])).toContain(keySecret.items![0].key);
    }
  });

  it('mounts the media claim of media-pvc.yaml into media-repo', () => {
    const pvc = parseYaml(read('k8s', 'media-pvc.yaml')) as { metadata: { name: string }; spec: { accessModes: string[] } };
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    const volumes = deploymentSpec(named(manifests, 'Deployment', appName('media-repo'))).template.spec.volumes;
    expect(volumes.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim?.claimName).toBe(pvc.metadata.name);
  });

  it('servicemonitor.yaml selects the Services of a release named atrium, on their http port', () => {
    const monitor = parseYaml(read('k8s', 'servicemonitor.yaml')) as {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> };
    };
    const services = ofKind(renderChart([], [], 'atrium'), 'Service');
    expect(services).toHaveLength(CLUSTER_APPS.length);
    for (const s of services) {
      const labels = s.metadata.labels;
      expect(labels).toMatchObject(monitor.spec.selector.matchLabels);
      const ports = (s.spec as { ports: Array<{ name: string }> }).ports.map((p) => p.name);
      expect(ports).toContain(monitor.spec.endpoints[0].port);
    }
    expect(monitor.spec.endpoints[0].path).toBe('/metrics');
  });
});
