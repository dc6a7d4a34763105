/**
 * The Dockerfile, .dockerignore and the two scripts the image installs
 * (deploy/docker/entrypoint.sh, deploy/docker/healthcheck.cjs). No Docker
 * engine here: the Dockerfile is parsed and checked against the repository,
 * and the scripts are run for real with sh and node.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_APPS, repoRoot } from './routing';

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions, with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

const dockerfile = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const ignorePatterns = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

/** Whether .dockerignore keeps a repository path out of the build context (the patterns used here: names, globs with * and **). */
function ignored(path: string): boolean {
  const toRegex = (pattern: string): RegExp =>
    new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '\u0000')
        .replace(/\*/g, '[^/]*')
        .replace(/\u0000/g, '(.*/)?')}(/.*)?$`,
    );
  let result = false;
  for (const pattern of ignorePatterns) {
    if (pattern.startsWith('!')) {
      if (toRegex(pattern.slice(1)).test(path)) result = false;
    } else if (toRegex(pattern).test(path)) {
      result = true;
    }
  }
  return result;
}

/** Stages as { name, from, instructions }. ARG defaults before the first FROM are substituted. */
function stages(): Array<{ name: string; from: string; body: Instruction[] }> {
  const args = new Map<string, string>();
  const out: Array<{ name: string; from: string; body: Instruction[] }> = [];
  for (const ins of dockerfile) {
    if (ins.op === 'ARG' && out.length === 0) {
      const [k, v] = ins.args.split('=');
      args.set(k, v ?? '');
    } else if (ins.op === 'FROM') {
      const [image, , name] = ins.args.split(/\s+/);
      out.push({ name: name ?? String(out.length), from: image.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? ''), body: [] });
    } else if (out.length) {
      out[out.length - 1].body.push(ins);
    }
  }
  return out;
}

describe('Dockerfile', () => {
  const [build, runtime, ...more] = stages();

  it('builds in one node:24-slim stage and runs from another', () => {
    expect(more).toEqual([]);
    expect(build.from).toBe('node:24-slim');
    expect(runtime.from).toBe('node:24-slim');
    expect(build.name).toBe('build');
  });

  it('installs with npm ci from the lockfile, builds dist/, then drops dev dependencies', () => {
    const runs = build.body.filter((i) => i.op === 'RUN').map((i) => i.args);
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r));
    const buildRun = runs.findIndex((r) => /\bnpm run build\b/.test(r));
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(buildRun).toBeGreaterThan(ci);
    expect(runs[buildRun]).toMatch(/npm prune --omit=dev/);
    const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(packageJson.scripts.build).toBeDefined();
    // The lockfile is copied before `npm ci` so the dependency layer is cached.
    const copyLock = build.body.findIndex((i) => i.op === 'COPY' && i.args.includes('package-lock.json'));
    expect(copyLock).toBeGreaterThanOrEqual(0);
    expect(copyLock).toBeLessThan(build.body.findIndex((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)));
  });

  it('copies dist/ and production node_modules into the runtime stage, runs as non-root, exposes 8080', () => {
    const copies = runtime.body.filter((i) => i.op === 'COPY').map((i) => i.args);
    expect(copies).toEqual(expect.arrayContaining(['--from=build /app/node_modules ./node_modules', '--from=build /app/dist ./dist']));
    const users = runtime.body.filter((i) => i.op === 'USER').map((i) => i.args);
    expect(users).toHaveLength(1);
    expect(users[0]).not.toMatch(/^(0|root)(:|$)/);
    expect(runtime.body.find((i) => i.op === 'EXPOSE')?.args).toBe('8080');
    expect(runtime.body.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["atrium-entrypoint"]');
  });

  it('copies from the build context only files that exist and that .dockerignore lets in', () => {
    const contextCopies = dockerfile
      .filter((i) => i.op === 'COPY' && !i.args.includes('--from='))
      .map((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')))
      .flatMap((parts) => parts.slice(0, -1));
    expect(contextCopies).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'deploy/docker/entrypoint.sh']));
    for (const source of contextCopies) {
      if (source === '.') continue;
      expect({ source, exists: existsSync(join(repoRoot, source)) }).toEqual({ source, exists: true });
      expect({ source, ignored: ignored(source) }).toEqual({ source, ignored: false });
    }
  });
});

describe('.dockerignore', () => {
  it('keeps installed and built files, git and local tools out of the context', () => {
    for (const path of ['node_modules', 'libs/matrix/node_modules', 'dist', 'dist/apps/client-api/src/main.js', '.git', '.tools/bin/helm', 'data/atrium.db']) {
      expect({ path, ignored: ignored(path) }).toEqual({ path, ignored: true });
    }
  });

  it('lets in everything `npm run build` compiles', () => {
    for (const path of ['apps/client-api/src', 'libs/matrix/src', 'scripts/build.mjs', '.swcrc', 'tsconfig.base.json', 'package.json']) {
      expect({ path, ignored: ignored(path) }).toEqual({ path, ignored: false });
    }
  });
});

describe('deploy/docker/entrypoint.sh', () => {
  let dist: string;
  beforeAll(() => {
    // A dist/ laid out like the build's, whose apps print what they were started with.
    dist = mkdtempSync(join(tmpdir(), 'atrium-dist-'));
    for (const app of [...CLUSTER_APPS, 'homeserver']) {
      mkdirSync(join(dist, 'apps', app, 'src'), { recursive: true });
      writeFileSync(
        join(dist, 'apps', app, 'src', 'main.js'),
        `console.log(JSON.stringify({ app: ${JSON.stringify(app)}, args: process.argv.slice(2), pid: process.pid }));\n`,
      );
    }
  });
  afterAll(() => rmSync(dist, { recursive: true, force: true }));

  const run = (args: string[], env: Record<string, string> = {}) => {
    const result = spawnSync('sh', [join(repoRoot, 'deploy', 'docker', 'entrypoint.sh'), ...args], {
      encoding: 'utf8',
      timeout: 10_000,
      env: { PATH: process.env.PATH ?? '', ATRIUM_DIST: dist, ...env },
    });
    return { status: result.status, out: result.stdout.trim() ? (JSON.parse(result.stdout) as { app: string; args: string[] }) : undefined, err: result.stderr };
  };

  it('starts the app named by the first argument, passing the rest', () => {
    const r = run(['room-server', '--config', '/etc/atrium/atrium.yaml']);
    expect(r.status).toBe(0);
    expect(r.out).toMatchObject({ app: 'room-server', args: ['--config', '/etc/atrium/atrium.yaml'] });
  });

  it('falls back to ATRIUM_APP, then to the embedded homeserver', () => {
    expect(run(['--config', 'x.yaml'], { ATRIUM_APP: 'media-repo' }).out).toMatchObject({ app: 'media-repo', args: ['--config', 'x.yaml'] });
    expect(run([]).out).toMatchObject({ app: 'homeserver', args: [] });
    expect(run(['generate-config', '--server-name', 'a.test']).out).toMatchObject({
      app: 'homeserver',
      args: ['generate-config', '--server-name', 'a.test'],
    });
  });

  it('refuses an unknown app with a usage error', () => {
    const r = run([], { ATRIUM_APP: 'no-such-app' });
    expect(r.status).toBe(64);
    expect(r.err).toContain("no app named 'no-such-app'");
  });

  it('execs node, so the app is the process the container runtime signals', () => {
    // `exec` replaces the shell: the pid the app reports is the pid spawn gave the shell.
    const child = spawn('sh', [join(repoRoot, 'deploy', 'docker', 'entrypoint.sh'), 'client-api'], {
      env: { PATH: process.env.PATH ?? '', ATRIUM_DIST: dist },
    });
    return new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('error', reject);
      child.on('close', () => {
        try {
          expect((JSON.parse(out) as { pid: number }).pid).toBe(child.pid);
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  });
});

describe('deploy/docker/healthcheck.cjs', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === '/health' ? 200 : req.url === '/ready' ? 503 : 404;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const check = async (args: string[], env: Record<string, string>) =>
    new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [join(repoRoot, 'deploy', 'docker', 'healthcheck.cjs'), ...args], {
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: 'ignore',
      });
      const timer = setTimeout(() => child.kill(), 10_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });

  it('exits 0 when the service answers 2xx on /health (the default path)', async () => {
    expect(await check([], { ATRIUM_LISTENERS__SERVICE__PORT: String(port) })).toBe(0);
  });

  it('exits 1 on an error status or when nothing listens', async () => {
    expect(await check(['/ready'], { ATRIUM_LISTENERS__SERVICE__PORT: String(port) })).toBe(1);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await check([], { ATRIUM_LISTENERS__SERVICE__PORT: String(closedPort) })).toBe(1);
  });
});
