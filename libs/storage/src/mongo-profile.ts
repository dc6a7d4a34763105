/**
 * Opt-in profile of the commands the MongoDB adapter sends, for finding slow
 * queries in the cluster mode (BENCHMARKS.md, "Client-Server API, cluster
 * mode"). Enabled by `ATRIUM_STORAGE_PROFILE=<directory>`: each process then
 * writes `mongo-profile-<pid>.json` there every few seconds and at close,
 * with per (command, collection, filter shape) the count and the total and
 * largest server round-trip times the driver measured. Filter shapes keep
 * field names and operators, never values. Off (no listener at all) unless set.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandStartedEvent, CommandSucceededEvent, CommandFailedEvent, MongoClient } from 'mongodb';

interface Entry {
  count: number;
  totalMs: number;
  maxMs: number;
}

const WRITE_EVERY_MS = 5000;

/** `{a: 1, b: {$gt: 2}}` → `a,b:$gt`; values are left out. */
function shape(filter: unknown): string {
  if (!filter || typeof filter !== 'object') return '';
  return Object.entries(filter as Record<string, unknown>)
    .map(([key, value]) => {
      if (Array.isArray(value)) return key.startsWith('$') ? `${key}(${value.map((v) => `{${shape(v)}}`).join(' ')})` : key;
      if (value && typeof value === 'object') {
        const ops = Object.keys(value).filter((k) => k.startsWith('$'));
        return ops.length > 0 ? `${key}:${ops.join('')}` : key;
      }
      return key;
    })
    .join(',');
}

function describe(event: CommandStartedEvent): string {
  const c = event.command as Record<string, unknown>;
  const name = event.commandName;
  const coll = String(c[name] ?? '');
  switch (name) {
    case 'find':
      // The driver hands the sort over as a Map.
      return `find ${coll} {${shape(c.filter)}}${c.sort ? ` sort {${(c.sort instanceof Map ? [...c.sort.keys()] : Object.keys(c.sort)).join(',')}}` : ''}${c.limit ? ' limit' : ''}`;
    case 'update':
    case 'delete': {
      const ops = (c[name === 'update' ? 'updates' : 'deletes'] as { q?: unknown }[] | undefined) ?? [];
      return `${name} ${coll} {${shape(ops[0]?.q)}}`;
    }
    case 'insert':
      return `insert ${coll} (${Array.isArray(c.documents) && c.documents.length > 1 ? 'many' : 'one'})`;
    case 'findAndModify':
      return `findAndModify ${coll} {${shape(c.query)}}`;
    case 'aggregate': {
      const match = (c.pipeline as Record<string, unknown>[] | undefined)?.find((s) => '$match' in s)?.$match;
      return `aggregate ${coll} {${shape(match)}}`;
    }
    case 'count':
      return `count ${coll} {${shape(c.query)}}`;
    default:
      return `${name} ${coll}`;
  }
}

/** Attaches the profile to a client created with `monitorCommands: true`; returns a function that writes it out. */
export function attachMongoProfile(client: MongoClient, dir: string): () => void {
  const started = new Map<number, string>();
  const entries = new Map<string, Entry>();
  const finish = (event: CommandSucceededEvent | CommandFailedEvent): void => {
    const key = started.get(event.requestId);
    if (key === undefined) return;
    started.delete(event.requestId);
    const entry = entries.get(key) ?? { count: 0, totalMs: 0, maxMs: 0 };
    entry.count += 1;
    entry.totalMs += event.duration;
    entry.maxMs = Math.max(entry.maxMs, event.duration);
    entries.set(key, entry);
  };
  client.on('commandStarted', (event) => started.set(event.requestId, describe(event)));
  client.on('commandSucceeded', finish);
  client.on('commandFailed', finish);
  const write = (): void => {
    const rows = [...entries].map(([command, e]) => ({ command, ...e })).sort((a, b) => b.totalMs - a.totalMs);
    try {
      writeFileSync(join(dir, `mongo-profile-${process.pid}.json`), JSON.stringify({ pid: process.pid, argv: process.argv.slice(1, 2), rows }, null, 1));
    } catch {
      // A profile that cannot be written must not disturb the service.
    }
  };
  setInterval(write, WRITE_EVERY_MS).unref();
  return write;
}
