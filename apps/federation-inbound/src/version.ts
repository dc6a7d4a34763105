import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function readVersion(): string {
  // The same file sits four levels up both from src/ (tests) and from dist/apps/<app>/src (built).
  for (const up of ['../../..', '../../../..']) {
    try {
      const pkg = JSON.parse(readFileSync(join(__dirname, up, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'atrium' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0';
}

/** The product version from the root package.json, reported by /_matrix/federation/v1/version. */
export const ATRIUM_VERSION = readVersion();
