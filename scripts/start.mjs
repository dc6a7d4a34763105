// `npm start`: the embedded mode on a fresh clone. Installs packages if they
// are missing, builds dist/, then runs every service in one process (SQLite,
// in-process bus, memory cache). On first run it writes ./atrium.yaml and a
// signing key under ./data. Extra arguments go to the server
// (e.g. `npm start -- --config other.yaml`).
import { spawnSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(`Atrium needs Node 24 or later (this is ${process.version}). Install it with:\n  npm i -g --prefix ~/.local/node24 node@24 && export PATH=~/.local/node24/bin:$PATH`);
  process.exit(1);
}
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  const install = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (install.status !== 0) process.exit(install.status ?? 1);
}
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const server = spawn(process.execPath, [join(root, 'dist/apps/homeserver/src/main.js'), 'start', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.kill(signal));
server.on('exit', (code) => process.exit(code ?? 0));
