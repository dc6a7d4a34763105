// `npm run coverage:endpoints`: which spec operations Atrium serves, and which
// the end-to-end suite exercises.
//
//   implemented  routes of every service module, read from the Nest controllers'
//                metadata in dist/ (apps/homeserver/src/routes.ts); nothing is started
//   covered      requests the e2e suite really made: a server started with
//                ATRIUM_RECORD_ROUTES=<file> appends `METHOD route status` per request
//                (libs/platform http-app.ts). `--run-e2e` runs the suite that way into
//                coverage/e2e-routes.log; without a log, the `/_matrix/...` paths written
//                in e2e/**/*.ts are used instead (an estimate: SDK calls are not seen).
//
// The spec's operation list is ../shared/spec/endpoints.tsv (or /work/shared/spec/...).
// Options: --run-e2e, --recorded FILE, --no-build, --json.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

function findSpecList() {
  for (const candidate of [resolve(root, '../shared/spec/endpoints.tsv'), '/work/shared/spec/endpoints.tsv']) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('endpoints.tsv not found at ../shared/spec/endpoints.tsv or /work/shared/spec/endpoints.tsv');
}

function readOperations(file) {
  const [header, ...lines] = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const columns = header.split('\t');
  return lines.map((line) => {
    const cells = line.split('\t');
    const row = Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? '']));
    return { api: row.api, method: row.method, path: row.path.trim(), operationId: row.operationId, inV12: row['in_v1.2'] === 'true', deprecated: row.deprecated === 'true' };
  });
}

/**
 * `/a/{x}/b`, `/a/:x/b` and `/a/*` (a wildcard taking the rest, e.g. a state
 * key) all become `/a/{}/…`; an optional `:x?` segment gives both forms.
 */
function normalise(path) {
  const segments = path.trim().split('/');
  let variants = [[]];
  for (const segment of segments) {
    const param = segment.startsWith(':') || segment === '*' || /^\{.*\}$/.test(segment);
    const optional = segment.startsWith(':') && segment.replace(/\(.*\)$/, '').endsWith('?');
    const piece = param ? '{}' : segment;
    variants = optional ? [...variants, ...variants.map((v) => [...v, piece])] : variants.map((v) => [...v, piece]);
  }
  return variants.map((v) => v.join('/').replace(/\/+$/, '') || '/');
}

const key = (method, path) => `${method.toUpperCase()} ${path}`;

function build() {
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
}

function implementedRoutes() {
  // dist/ may be missing (or being rebuilt by a test run): build it then.
  if (!existsSync(join(root, 'dist/apps/homeserver/src/routes.js'))) build();
  const require = createRequire(import.meta.url);
  const { listRoutes } = require(join(root, 'dist/apps/homeserver/src/routes.js'));
  const { ALL_SERVICE_MODULES } = require(join(root, 'dist/apps/homeserver/src/embedded.js'));
  const keys = new Set();
  for (const route of listRoutes(ALL_SERVICE_MODULES)) for (const path of normalise(route.path)) keys.add(key(route.method, path));
  return keys;
}

function recordedRoutes(file) {
  const keys = new Set();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [method, route] = line.trim().split(/\s+/);
    if (method && route) for (const path of normalise(route)) keys.add(key(method, path));
  }
  return keys;
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (path.endsWith('.ts')) yield path;
  }
}

/** The estimate: `/_matrix/...` paths in e2e sources matched against the spec's path patterns, any method. */
function scannedPaths(operations) {
  const text = [...walk(join(root, 'e2e'))].map((f) => readFileSync(f, 'utf8')).join('\n');
  const found = new Set();
  const patterns = operations.map((op) => ({
    op,
    regex: new RegExp(`${op.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/\'"`?]+')}(?=[?'"\`]|$)`, 'm'),
  }));
  for (const { op, regex } of patterns) if (regex.test(text)) found.add(key(op.method, normalise(op.path)[0]));
  return found;
}

function pct(n, d) {
  return d === 0 ? '-' : `${((100 * n) / d).toFixed(0)}%`;
}

function main() {
  const recordedDefault = join(root, 'coverage/e2e-routes.log');
  let recorded = option('--recorded') ?? (existsSync(recordedDefault) ? recordedDefault : undefined);
  if (flag('--run-e2e')) {
    mkdirSync(dirname(recordedDefault), { recursive: true });
    rmSync(recordedDefault, { force: true });
    const run = spawnSync(process.execPath, [join(root, 'scripts/test.mjs'), 'e2e'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, ATRIUM_RECORD_ROUTES: recordedDefault },
    });
    if (run.status !== 0) console.warn('(the e2e run had failures; coverage counts the requests it made)');
    recorded = recordedDefault;
  } else if (!flag('--no-build')) {
    build();
  }

  const specFile = findSpecList();
  const operations = readOperations(specFile);
  const client = operations.filter((op) => op.api === 'client-server');
  const implemented = implementedRoutes();
  const coveredKeys = recorded ? recordedRoutes(recorded) : scannedPaths(client);
  const coverageSource = recorded ? `requests recorded in ${recorded}` : 'estimate: /_matrix paths in e2e/**/*.ts (run with --run-e2e to record real requests)';

  const status = (op) => {
    const keys = normalise(op.path).map((p) => key(op.method, p));
    return { ...op, implemented: keys.some((k) => implemented.has(k)), covered: keys.some((k) => coveredKeys.has(k)) };
  };
  const rows = client.map(status);
  const summary = (list) => ({
    operations: list.length,
    implemented: list.filter((r) => r.implemented).length,
    covered: list.filter((r) => r.covered).length,
  });
  const v12 = summary(rows.filter((r) => r.inV12));
  const all = summary(rows);

  if (flag('--json')) {
    console.log(JSON.stringify({ spec: specFile, coverageSource, v12, all, operations: rows }, null, 2));
    return;
  }
  const line = (label, s) =>
    `  ${label.padEnd(14)} ${String(s.operations).padStart(10)} ${`${s.implemented} (${pct(s.implemented, s.operations)})`.padStart(14)} ${`${s.covered} (${pct(s.covered, s.operations)})`.padStart(16)}`;
  console.log(`\nClient-Server API operations (${specFile})`);
  console.log(`  ${''.padEnd(14)} ${'operations'.padStart(10)} ${'implemented'.padStart(14)} ${'covered by e2e'.padStart(16)}`);
  console.log(line('in v1.2', v12));
  console.log(line('all', all));
  console.log(`  covered = ${coverageSource}`);
  const list = (title, items) => {
    console.log(`\n${title} (${items.length}):`);
    for (const r of items) console.log(`  ${r.method.padEnd(6)} ${r.path}  ${r.operationId}${r.deprecated ? ' (deprecated)' : ''}`);
  };
  const others = [...new Set(operations.map((op) => op.api))].filter((api) => api !== 'client-server');
  console.log('\nOther APIs (implemented / covered by e2e of all operations):');
  for (const api of others) {
    const s = summary(operations.filter((op) => op.api === api).map(status));
    console.log(`  ${api.padEnd(20)} ${s.implemented}/${s.operations} implemented, ${s.covered} covered`);
  }
  list('Missing, in v1.2', rows.filter((r) => r.inV12 && !r.implemented));
  list('Missing, added after v1.2', rows.filter((r) => !r.inV12 && !r.implemented));
  list('Implemented but not covered by e2e', rows.filter((r) => r.implemented && !r.covered));
}

main();
