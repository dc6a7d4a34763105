// `npm test`: runs every Jest project once and ends with the line CI reads:
//   tests: N passed, M failed
// Suites that need servers (nats-server, redis-server, FerretDB, Synapse) start
// them themselves on loopback ports they pick; see scripts/install-test-deps.sh.
// Extra arguments go to Jest (e.g. `npm test -- libs/matrix`).
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(mkdtempSync(join(tmpdir(), 'atrium-jest-')), 'results.json');
const args = [join(root, 'node_modules/jest/bin/jest.js'), '--config', join(root, 'jest.config.cjs'),
  // --forceExit: a suite whose set-up failed half-way can leave a server handle
  // open; the run must still end (and report) rather than hang CI.
  '--json', '--outputFile', out, '--forceExit', ...process.argv.slice(2)];
// A whole run records the requests the e2e servers answer, so `npm run coverage:endpoints`
// afterwards counts the operations the suite really called (libs/platform http-app.ts).
const env = { ...process.env };
if (process.argv.length === 2 && !env.ATRIUM_RECORD_ROUTES) {
  const recorded = join(root, 'coverage/e2e-routes.log');
  mkdirSync(dirname(recorded), { recursive: true });
  rmSync(recorded, { force: true });
  env.ATRIUM_RECORD_ROUTES = recorded;
}
const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });

let passed = 0;
let failed = 0;
if (existsSync(out)) {
  const results = JSON.parse(readFileSync(out, 'utf8'));
  passed = results.numPassedTests;
  failed = results.numFailedTests;
  // A suite that fails to load (syntax error, missing server) has no failed
  // test of its own; count it so it cannot pass unnoticed.
  failed += results.numRuntimeErrorTestSuites ?? 0;
}
if (run.status !== 0 && failed === 0) failed = 1;
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
