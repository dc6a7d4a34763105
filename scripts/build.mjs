// Compiles apps/, libs/, bench/ and the server launchers the benchmarks share
// with the e2e suite (tools/, e2e/support/) to dist/ with SWC (path aliases rewritten to
// relative requires). Type checking is `npm run typecheck`, kept separate so a
// build takes about a second.
import { execFileSync } from 'node:child_process';
import { rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const dirs = ['apps', 'libs', 'bench', 'tools', 'e2e/support'].filter((d) => existsSync(join(root, d)));
execFileSync(
  process.execPath,
  [join(root, 'node_modules/@swc/cli/bin/swc.js'), ...dirs, '-d', 'dist', '--config-file', '.swcrc',
   '--ignore', '**/*.spec.ts,**/*.test.ts', '--copy-files', '--quiet'],
  { cwd: root, stdio: 'inherit' },
);
