/**
 * Starts FerretDB 1.24 (SQLite backend, data in a fresh temp dir) on a random
 * loopback port for tests of the MongoDB storage adapter.
 *
 * The binary is `.tools/bin/ferretdb` (built by scripts/install-ferretdb.sh)
 * or `$ATRIUM_FERRETDB_BIN`. A missing binary is an error, never a skip.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface FerretDbServer {
  /** `mongodb://127.0.0.1:PORT/` */
  url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

export function ferretDbBinary(): string {
  return process.env.ATRIUM_FERRETDB_BIN ?? resolve(__dirname, '../../.tools/bin/ferretdb');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

export async function startFerretDb(): Promise<FerretDbServer> {
  const bin = ferretDbBinary();
  if (!existsSync(bin)) {
    throw new Error(`FerretDB binary not found at ${bin}: run scripts/install-ferretdb.sh (or set ATRIUM_FERRETDB_BIN)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'atrium-ferretdb-'));
  // Port 0: FerretDB binds a free port itself and the wrapper prints the URI, so no probe-then-bind race.
  const child = spawn(bin, ['-listen-addr', '127.0.0.1:0', '-sqlite-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));

  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  let url: string;
  try {
    url = await new Promise<string>((done, fail) => {
      let stdout = '';
      const timer = setTimeout(() => fail(new Error(`FerretDB did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        const match = /listening (mongodb:\/\/\S+)/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          done(match[1]);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`FerretDB exited at start (code ${code}, signal ${signal}): ${stderr}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        fail(err);
      });
    });
    const port = Number(new URL(url).port);
    if (!(await canConnect(port))) throw new Error(`FerretDB said it listens on ${url} but refuses connections`);
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
