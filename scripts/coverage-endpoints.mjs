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

const trimSlash = (path) => path.trim().replace(/\/+$/, '') || '/';
const escape = (text) => text.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&');

/**
 * A server route as a regular expression over paths: `:param` (Nest/Fastify)
 * takes one segment (`:param?` may be absent), `*` takes the rest, possibly
 * nothing (Fastify wildcards, e.g. state keys or `pushrules/*`).
 */
function routeRegex(route) {
  let source = '';
  for (const segment of trimSlash(route).split('/').slice(1)) {
    if (segment === '*') source += '(?:/.*)?';
    else if (segment.startsWith(':')) source += segment.replace(/\(.*\)$/, '').endsWith('?') ? '(?:/[^/]+)?' : '/[^/]+';
    else source += `/${escape(segment)}`;
  }
  return new RegExp(`^${source || '/'}$`);
}

/** A spec path as a regular expression over concrete paths, and a sample concrete path. */
function specPattern(path) {
  const segments = trimSlash(path).split('/').slice(1);
  const isParam = (segment) => /^\{.*\}$/.test(segment);
  return {
    regex: new RegExp(`^${segments.map((seg) => (isParam(seg) ? '/[^/]+' : `/${escape(seg)}`)).join('') || '/'}$`),
    sample: `/${segments.map((seg) => (isParam(seg) ? 'p' : seg)).join('/')}`,
    literals: segments.filter((seg) => !isParam(seg)).length,
  };
}

function build() {
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' });
}

function implementedRoutes() {
  // dist/ may be missing (or being rebuilt by a test run): build it then.
  if (!existsSync(join(root, 'dist/apps/homeserver/src/routes.js'))) build();
  const require = createRequire(import.meta.url);
  const { listRoutes } = require(join(root, 'dist/apps/homeserver/src/routes.js'));
  const { ALL_SERVICE_MODULES } = require(join(root, 'dist/apps/homeserver/src/embedded.js'));
  return listRoutes(ALL_SERVICE_MODULES).map((route) => ({ method: route.method.toUpperCase(), regex: routeRegex(route.path) }));
}

/** Recorded requests: `METHOD route status path` (older logs: no path). */
function recordedRequests(file) {
  const requests = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [method, route, , path] = line.trim().split(/\s+/);
    if (method && route) requests.push({ method: method.toUpperCase(), route, path: path ? trimSlash(path) : undefined });
  }
  return requests;
}

/**
 * Which operations the recorded requests reached: a request's concrete path
 * picks the matching spec path with the most literal segments (so
 * `/pushrules/global/` is not counted for `/pushrules/{scope}/...`); a line
 * without a path counts for the operations its route pattern serves.
 */
function coveredByRecording(requests, ops) {
  const covered = new Set();
  const patterns = ops.map((op) => ({ op, ...specPattern(op.path) }));
  for (const request of requests) {
    const candidates = patterns.filter((p) => p.op.method === request.method);
    if (request.path) {
      let best;
      for (const p of candidates) if (p.regex.test(request.path) && (!best || p.literals > best.literals)) best = p;
      if (best) for (const p of candidates) if (p.sample === best.sample) covered.add(p.op);
    } else {
      const regex = routeRegex(request.route);
      for (const p of candidates) if (regex.test(p.sample)) covered.add(p.op);
    }
  }
  return covered;
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (path.endsWith('.ts')) yield path;
  }
}

/** The estimate: `/_matrix/...` paths in e2e sources matched against the spec's path patterns, any method. */
function scannedOperations(ops) {
  const text = [...walk(join(root, 'e2e'))].map((f) => readFileSync(f, 'utf8')).join('\n');
  const found = new Set();
  for (const op of ops) {
    const regex = new RegExp(`${escape(trimSlash(op.path)).replace(/\\\{[^}]+\\\}/g, '[^/\'"`?]+')}/?(?=[?'"\`]|$)`, 'm');
    if (regex.test(text)) found.add(op);
  }
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
  const routes = implementedRoutes();
  const isImplemented = (op) => routes.some((r) => r.method === op.method && r.regex.test(specPattern(op.path).sample));
  const coveredOps = recorded ? coveredByRecording(recordedRequests(recorded), operations) : scannedOperations(client);
  const coverageSource = recorded ? `requests recorded in ${recorded}` : 'estimate: /_matrix paths in e2e/**/*.ts (run with --run-e2e to record real requests)';

  const status = (op) => ({ ...op, implemented: isImplemented(op), covered: coveredOps.has(op) });
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
