/**
 * Starts a real `redis-server` (no persistence: `--save '' --appendonly no`)
 * on a random loopback port, for tests of the Redis cache adapter and the
 * cluster end-to-end suite.
 *
 * The binary is `redis-server` on PATH or `$ATRIUM_REDIS_BIN`. A missing
 * binary is an error that says how to install it, never a skip.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** Attempts when another process takes the probed port between the probe and Redis binding it. */
const PORT_ATTEMPTS = 5;
const INSTALL_HINT = 'apt-get install nats-server redis-server';

export function redisServerBinary(): string {
  return process.env.ATRIUM_REDIS_BIN ?? 'redis-server';
}

function assertRunnable(bin: string): void {
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5_000 });
  if (probe.error || probe.status !== 0) {
    throw new Error(`cannot run ${bin} (${probe.error?.message ?? `exit ${probe.status}`}): install it with \`${INSTALL_HINT}\` (or set ATRIUM_REDIS_BIN)`);
  }
}

/** A loopback port free right now (Redis cannot bind port 0: `--port 0` turns TCP off). */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

async function startOnce(bin: string, port: number, dir: string): Promise<RedisServer> {
  const child = spawn(
    bin,
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const append = (chunk: string): void => {
    log = (log + chunk).slice(-8000);
  };
  child.stderr.setEncoding('utf8').on('data', append);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  try {
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not start within ${START_TIMEOUT_MS} ms: ${log}`)), START_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        append(chunk);
        if (log.includes('Ready to accept connections')) {
          clearTimeout(timer);
          done();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`redis-server exited at start (code ${code}, signal ${signal}): ${log}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        fail(err);
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

export async function startRedis(): Promise<RedisServer> {
  const bin = redisServerBinary();
  assertRunnable(bin);
  const dir = mkdtempSync(join(tmpdir(), 'atrium-redis-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    try {
      const server = await startOnce(bin, await freePort(), dir);
      return {
        url: server.url,
        async stop() {
          await server.stop();
          cleanup();
        },
      };
    } catch (err) {
      lastError = err;
      // Only a lost race for the port is worth another try.
      if (!/Address already in use/i.test(String(err))) break;
    }
  }
  cleanup();
  throw lastError;
}
