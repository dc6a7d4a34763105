/**
 * Starts FerretDB 1.24 on a random loopback port, data in a fresh temp dir,
 * for the MongoDB storage adapter: its contract tests, the cluster mode of
 * the end-to-end suite and the benchmarks.
 *
 * The backend is PostgreSQL (a private server the wrapper starts in the temp
 * dir, on a Unix socket; tools/ferretdb/postgres.go): FerretDB passes the
 * equality part of a filter to PostgreSQL, where its SQLite backend reads
 * and decodes the whole collection for every query but a lookup by `_id`
 * (BENCHMARKS.md, "Client-Server API, cluster mode: where the time goes").
 * `ATRIUM_FERRETDB_BACKEND=sqlite` runs the SQLite backend instead.
 *
 * The binary is `.tools/bin/ferretdb` (built by scripts/install-ferretdb.sh)
 * or `$ATRIUM_FERRETDB_BIN`. A missing binary is an error, never a skip.
 */
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { repoRoot, spawnUntilReady, tempDir } from './process';

export interface FerretDbServer {
  /** `mongodb://127.0.0.1:PORT/` */
  url: string;
  stop(): Promise<void>;
}

/** initdb and PostgreSQL's start-up come first (~1–3 s; more on a loaded machine). */
const START_TIMEOUT_MS = 60_000;

export function ferretDbBinary(): string {
  return process.env.ATRIUM_FERRETDB_BIN ?? join(repoRoot(), '.tools/bin/ferretdb');
}

export function ferretDbBackend(): 'postgresql' | 'sqlite' {
  const backend = process.env.ATRIUM_FERRETDB_BACKEND ?? 'postgresql';
  if (backend !== 'postgresql' && backend !== 'sqlite') throw new Error(`ATRIUM_FERRETDB_BACKEND must be postgresql or sqlite, not ${backend}`);
  return backend;
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
  // The wrapper has no --version to probe with, so this checks the file is there.
  if (!existsSync(bin)) {
    throw new Error(`FerretDB binary not found at ${bin}: run scripts/install-ferretdb.sh (or set ATRIUM_FERRETDB_BIN)`);
  }
  const dir = tempDir('atrium-ferretdb-');
  const server = await spawnUntilReady({
    name: 'FerretDB',
    bin,
    // Port 0: FerretDB binds a free port itself and the wrapper prints the URI, so no probe-then-bind race.
    args: ['-listen-addr', '127.0.0.1:0', ...(ferretDbBackend() === 'sqlite' ? ['-sqlite-dir', join(dir.path, 'data')] : ['-postgresql-dir', join(dir.path, 'pg')])],
    ready: (log) => /listening (mongodb:\/\/\S+)/.exec(log)?.[1],
    startTimeoutMs: START_TIMEOUT_MS,
    cleanup: dir.remove,
  });
  if (!(await canConnect(Number(new URL(server.url).port)))) {
    await server.stop();
    throw new Error(`FerretDB said it listens on ${server.url} but refuses connections`);
  }
  return { url: server.url, stop: () => server.stop() };
}
