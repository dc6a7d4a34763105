/**
 * What the server launchers (nats-server, redis-server, FerretDB) and the
 * end-to-end process helpers share: a free loopback port, a check that a
 * binary runs (failing with how to install it), a spawn that waits for the
 * line saying the server is ready, and a SIGTERM-then-SIGKILL stop.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** How long stop() waits after SIGTERM before it sends SIGKILL. */
export const STOP_TIMEOUT_MS = 5_000;
/** Characters of a server's output kept for the error of a failed start. */
const LOG_TAIL = 8_000;

/**
 * The repository's root: the nearest folder above this file holding nx.json.
 * Found rather than fixed, because this code also runs compiled from dist/
 * (the client benchmark starts servers the way the e2e suite does).
 */
export function repoRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'nx.json'))) return dir;
  }
  throw new Error(`no nx.json above ${__dirname}`);
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export function freePort(): Promise<number> {
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

/**
 * Throws when `bin --version` does not run and exit 0; the error ends with
 * `hint` (how to install the binary or where to point at one).
 */
export function assertRunnable(bin: string, hint: string): void {
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5_000 });
  if (probe.error || probe.status !== 0) {
    throw new Error(`cannot run ${bin} (${probe.error?.message ?? `exit ${probe.status}`}): ${hint}`);
  }
}

/** A fresh directory under the OS temp dir, and its removal. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Sends SIGTERM, then SIGKILL after `timeoutMs`, and resolves once the process has exited. */
export async function stopChild(child: ChildProcess, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

export interface SpawnUntilReadyOptions {
  /** For error messages: "`name` did not start within …". */
  name: string;
  bin: string;
  args: string[];
  /**
   * Called with the output so far (stdout and stderr, the last 8,000
   * characters) after each chunk; returns the server's URL once the output
   * shows it is ready, else undefined.
   */
  ready: (output: string) => string | undefined;
  startTimeoutMs: number;
  /** Extra environment over this process's. */
  env?: NodeJS.ProcessEnv;
  /** Runs once the process is gone, after a failed start or after stop() (e.g. removes its temp dir). */
  cleanup?: () => void;
}

export interface ReadyProcess {
  child: ChildProcess;
  /** What `ready` returned. */
  url: string;
  /** SIGTERM, SIGKILL after 5 s, then `cleanup`. */
  stop(): Promise<void>;
}

/**
 * Spawns `bin args` and resolves once `ready` accepts its output. It fails
 * (after killing the process and running `cleanup`) when the process exits
 * or cannot be spawned first, or after `startTimeoutMs`; the error carries
 * the tail of the output.
 */
export async function spawnUntilReady(options: SpawnUntilReadyOptions): Promise<ReadyProcess> {
  const { name, startTimeoutMs } = options;
  const cleanup = options.cleanup ?? (() => undefined);
  let child: ChildProcess;
  try {
    child = spawn(options.bin, options.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ? { ...process.env, ...options.env } : process.env,
    });
  } catch (err) {
    cleanup();
    throw err;
  }
  const exited = new Promise<void>((done) => child.once('exit', () => done()));

  let url: string;
  try {
    url = await new Promise<string>((done, fail) => {
      let log = '';
      const timer = setTimeout(() => fail(new Error(`${name} did not start within ${startTimeoutMs} ms: ${log}`)), startTimeoutMs);
      const onOutput = (chunk: string): void => {
        log = (log + chunk).slice(-LOG_TAIL);
        const found = options.ready(log);
        if (found !== undefined) {
          clearTimeout(timer);
          done(found);
        }
      };
      child.stdout?.setEncoding('utf8').on('data', onOutput);
      child.stderr?.setEncoding('utf8').on('data', onOutput);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`${name} exited at start (code ${code}, signal ${signal}): ${log}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        fail(err);
      });
    });
  } catch (err) {
    // A process that never spawned (ENOENT, EACCES) has no exit to wait for.
    if (child.pid !== undefined) {
      child.kill('SIGKILL');
      await exited;
    }
    cleanup();
    throw err;
  }

  return {
    child,
    url,
    async stop() {
      await stopChild(child);
      cleanup();
    },
  };
}
