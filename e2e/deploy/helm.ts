/**
 * Runs the real Helm binary on helm/atrium and parses what it renders.
 * Helm comes from scripts/install-helm.sh (.tools/bin/helm) or $ATRIUM_HELM_BIN;
 * without it the tests fail rather than skip.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './routing';

export const chartDir = join(repoRoot, 'helm', 'atrium');
export const RELEASE = 'atr';
export const NAMESPACE = 'matrix';

export function helmBinary(): string {
  const bin = process.env.ATRIUM_HELM_BIN ?? join(repoRoot, '.tools', 'bin', 'helm');
  if (!existsSync(bin)) {
    throw new Error(`Helm not found at ${bin}: run scripts/install-helm.sh (or set ATRIUM_HELM_BIN)`);
  }
  return bin;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runHelm(args: string[]): HelmResult {
  const run = spawnSync(helmBinary(), args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

export type Manifest = Record<string, unknown> & {
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
};

function isManifest(value: unknown): value is Manifest {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const metadata = v.metadata as Record<string, unknown> | undefined;
  return typeof v.kind === 'string' && typeof metadata?.name === 'string';
}

/** `helm template` with --set style overrides; throws with Helm's message when rendering fails. */
export function renderChart(sets: string[] = [], extraArgs: string[] = [], release = RELEASE): Manifest[] {
  const args = ['template', release, chartDir, '--namespace', NAMESPACE, ...sets.flatMap((s) => ['--set', s]), ...extraArgs];
  const result = runHelm(args);
  if (result.status !== 0) throw new Error(`helm ${args.join(' ')} failed:\n${result.stderr}`);
  const manifests: Manifest[] = [];
  for (const doc of parseAllDocuments(result.stdout)) {
    if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0].message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isManifest(value)) throw new Error(`rendered document without kind/metadata.name: ${JSON.stringify(value).slice(0, 200)}`);
    manifests.push(value);
  }
  return manifests;
}

/** The stderr of a `helm template` that must fail. */
export function renderFailure(sets: string[]): string {
  const result = runHelm(['template', RELEASE, chartDir, '--namespace', NAMESPACE, ...sets.flatMap((s) => ['--set', s])]);
  if (result.status === 0) throw new Error(`helm template with ${sets.join(', ')} succeeded but should fail`);
  return result.stderr;
}

export function ofKind(manifests: Manifest[], kind: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind);
}

export function named(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} named ${name}; have ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
}

/** Resource name of an app in the test release. */
export function appName(app: string): string {
  return `${RELEASE}-atrium-${app}`;
}

// Narrow views of the manifests the tests read (Kubernetes API shapes).
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
export interface Probe {
  httpGet?: { path: string; port: string | number };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>;
  securityContext?: Record<string, unknown>;
}
export interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  emptyDir?: unknown;
  persistentVolumeClaim?: { claimName: string };
}
export interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
    spec: { containers: Container[]; volumes: Volume[]; serviceAccountName: string; securityContext?: Record<string, unknown> };
  };
}

export function deploymentSpec(m: Manifest): DeploymentSpec {
  return m.spec as DeploymentSpec;
}

/** Secret data as text, from `stringData` or base64 `data`. */
export function secretData(m: Manifest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((m.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries((m.stringData ?? {}) as Record<string, string>)) out[k] = v;
  return out;
}

/**
 * The environment a container would get, resolving secretKeyRefs against the
 * rendered Secrets (and `external`, standing in for Secrets made outside the chart).
 */
export function containerEnv(
  container: Container,
  manifests: Manifest[],
  external: Record<string, Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value;
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const rendered = manifests.find((m) => m.kind === 'Secret' && m.metadata.name === name);
      const data = rendered ? secretData(rendered) : external[name];
      if (!data) throw new Error(`env ${e.name} reads Secret ${name}, which is neither rendered nor given`);
      if (data[key] === undefined) throw new Error(`env ${e.name} reads key ${key} missing from Secret ${name}`);
      env[e.name] = data[key];
    } else {
      throw new Error(`env ${e.name} has neither value nor secretKeyRef`);
    }
  }
  return env;
}
