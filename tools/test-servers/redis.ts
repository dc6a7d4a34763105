/**
 * Starts a real `redis-server` (no persistence: `--save '' --appendonly no`)
 * on a random loopback port, for tests of the Redis cache adapter and the
 * cluster end-to-end suite.
 *
 * The binary is `redis-server` on PATH or `$ATRIUM_REDIS_BIN`. A missing
 * binary is an error that says how to install it, never a skip.
 */
import { assertRunnable, freePort, spawnUntilReady, tempDir } from './process';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;
/** Attempts when another process takes the probed port between the probe and Redis binding it. */
const PORT_ATTEMPTS = 5;
const INSTALL_HINT = 'apt-get install nats-server redis-server';

export function redisServerBinary(): string {
  return process.env.ATRIUM_REDIS_BIN ?? 'redis-server';
}

export async function startRedis(): Promise<RedisServer> {
  const bin = redisServerBinary();
  assertRunnable(bin, `install it with \`${INSTALL_HINT}\` (or set ATRIUM_REDIS_BIN)`);
  // One data dir for every attempt, removed after the last failed one or after stop().
  const dir = tempDir('atrium-redis-');
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    try {
      // A probed port: Redis cannot bind port 0 (`--port 0` turns TCP off).
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      const server = await spawnUntilReady({
        name: 'redis-server',
        bin,
        args: ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir.path, '--protected-mode', 'yes'],
        ready: (log) => (log.includes('Ready to accept connections') ? url : undefined),
        startTimeoutMs: START_TIMEOUT_MS,
      });
      return {
        url: server.url,
        async stop() {
          await server.stop();
          dir.remove();
        },
      };
    } catch (err) {
      lastError = err;
      // Only a lost race for the port is worth another try.
      if (!/Address already in use/i.test(String(err))) break;
    }
  }
  dir.remove();
  throw lastError;
}
