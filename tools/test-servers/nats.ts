/**
 * Starts a real `nats-server -js` (JetStream, file storage in a fresh temp dir)
 * on a random loopback port, for tests of the NATS bus adapter and the cluster
 * end-to-end suite.
 *
 * The binary is `nats-server` on PATH or `$ATRIUM_NATS_BIN`. A missing binary
 * is an error that says how to install it, never a skip.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  /** `nats://127.0.0.1:PORT` */
  url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const INSTALL_HINT = 'apt-get install nats-server redis-server';

export function natsServerBinary(): string {
  return process.env.ATRIUM_NATS_BIN ?? 'nats-server';
}

/** Throws with the install command when the binary cannot be run. */
function assertRunnable(bin: string): void {
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5_000 });
  if (probe.error || probe.status !== 0) {
    throw new Error(`cannot run ${bin} (${probe.error?.message ?? `exit ${probe.status}`}): install it with \`${INSTALL_HINT}\` (or set ATRIUM_NATS_BIN)`);
  }
}

export async function startNats(): Promise<NatsServer> {
  const bin = natsServerBinary();
  assertRunnable(bin);
  const dir = mkdtempSync(join(tmpdir(), 'atrium-nats-'));
  // `-p -1` lets the server bind a free port itself and log it, so there is no probe-then-bind race.
  const child = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', '-1', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });

  let url: string;
  try {
    url = await new Promise<string>((done, fail) => {
      let port: string | undefined;
      const timer = setTimeout(() => fail(new Error(`nats-server did not start within ${START_TIMEOUT_MS} ms: ${log}`)), START_TIMEOUT_MS);
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        log = (log + chunk).slice(-8000);
        port ??= /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log)?.[1];
        if (port && log.includes('Server is ready')) {
          clearTimeout(timer);
          done(`nats://127.0.0.1:${port}`);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`nats-server exited at start (code ${code}, signal ${signal}): ${log}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        fail(err);
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    cleanup();
    throw err;
  }

  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    },
  };
}
