/**
 * Starts a real `nats-server -js` (JetStream, file storage in a fresh temp dir)
 * on a random loopback port, for tests of the NATS bus adapter and the cluster
 * end-to-end suite.
 *
 * The binary is `nats-server` on PATH or `$ATRIUM_NATS_BIN`. A missing binary
 * is an error that says how to install it, never a skip.
 */
import { assertRunnable, spawnUntilReady, tempDir } from './process';

export interface NatsServer {
  /** `nats://127.0.0.1:PORT` */
  url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;
const INSTALL_HINT = 'apt-get install nats-server redis-server';

export function natsServerBinary(): string {
  return process.env.ATRIUM_NATS_BIN ?? 'nats-server';
}

export async function startNats(): Promise<NatsServer> {
  const bin = natsServerBinary();
  assertRunnable(bin, `install it with \`${INSTALL_HINT}\` (or set ATRIUM_NATS_BIN)`);
  const dir = tempDir('atrium-nats-');
  let port: string | undefined;
  const server = await spawnUntilReady({
    name: 'nats-server',
    bin,
    // `-p -1` lets the server bind a free port itself and log it, so there is no probe-then-bind race.
    args: ['-js', '-a', '127.0.0.1', '-p', '-1', '-sd', dir.path],
    ready: (log) => {
      // Kept once seen: the line may leave the log tail before "Server is ready" arrives.
      port ??= /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log)?.[1];
      return port && log.includes('Server is ready') ? `nats://127.0.0.1:${port}` : undefined;
    },
    startTimeoutMs: START_TIMEOUT_MS,
    cleanup: dir.remove,
  });
  return { url: server.url, stop: () => server.stop() };
}
