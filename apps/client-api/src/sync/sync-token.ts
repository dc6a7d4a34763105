import { Errors } from '@atrium/http';
import { SYNC_STREAMS, type StreamPositions } from './sync-sections';

/**
 * Sync tokens (docs/client-server-design.md "Sync tokens"):
 * `s<events>_<account_data>_<to_device>_<presence>_<receipts>_<typing>_<device_lists>`.
 * A missing trailing part reads as 0, so tokens stay valid as streams are
 * added; a part beyond the known streams is ignored (a newer server's token).
 * The same tokens serve /messages and /context (`start`, `end`, `prev_batch`):
 * there only the events part counts, read as the gap just after that position.
 */
const TOKEN = /^s(\d{1,15})((?:_\d{1,15}){0,31})$/;

export function zeroPositions(): StreamPositions {
  return { events: 0, account_data: 0, to_device: 0, presence: 0, receipts: 0, typing: 0, device_lists: 0 };
}

/** Parses a token; undefined when it is not one. */
export function parseSyncToken(token: string): StreamPositions | undefined {
  const match = TOKEN.exec(token);
  if (!match) return undefined;
  const parts = [match[1], ...match[2].split('_').slice(1)].map(Number);
  const out = zeroPositions();
  SYNC_STREAMS.forEach((stream, i) => {
    out[stream] = parts[i] ?? 0;
  });
  return out;
}

/** parseSyncToken, or 400 M_INVALID_PARAM naming the parameter. */
export function requireSyncToken(name: string, token: string): StreamPositions {
  const positions = parseSyncToken(token);
  if (!positions) throw Errors.invalidParam(`${name} is not a valid token`);
  return positions;
}

export function formatSyncToken(positions: StreamPositions): string {
  return 's' + SYNC_STREAMS.map((stream) => String(positions[stream])).join('_');
}

/** A token at events position `events`, other streams taken from `rest`. */
export function eventsToken(events: number, rest: StreamPositions = zeroPositions()): string {
  return formatSyncToken({ ...rest, events: Math.max(0, events) });
}

/**
 * /messages and /context tokens for positions below 0: events backfilled over
 * federation take negative positions, before the room's earlier history
 * (docs/federation-design.md "Backfill (as built)"). They are written
 * `b<n>` for position -n; positions from 0 up keep the sync token format, so
 * a sync's `next_batch` or `prev_batch` still works as `from`.
 */
const BACKFILL_TOKEN = /^b(\d{1,16})$/;

/** The events position of a /messages token (either format), or 400 M_INVALID_PARAM naming the parameter. */
export function requirePaginationPosition(name: string, token: string): number {
  const backfill = BACKFILL_TOKEN.exec(token);
  if (backfill) {
    const n = Number(backfill[1]);
    if (!Number.isSafeInteger(n)) throw Errors.invalidParam(`${name} is not a valid token`);
    return -n;
  }
  return requireSyncToken(name, token).events;
}

/**
 * The lowest events position a walk through history reaches: events
 * backfilled over federation sit below 0 (docs/federation-design.md
 * "Backfill (as built)").
 */
export const HISTORY_FLOOR = Number.MIN_SAFE_INTEGER;

/** A /messages token at events position `position` (negative positions in the backfill format). */
export function paginationToken(position: number): string {
  return position < 0 ? `b${-position}` : eventsToken(position);
}
