import { Errors } from '@atrium/http';
import { requirePaginationPosition } from '../sync/sync-token';

/**
 * Query parameters shared by /relations and /threads.
 *
 * Pagination tokens are those of /messages (sync-token.ts): the sync token
 * format (`s<events>_…`, of which only the events position counts), or
 * `b<n>` for position -n in history backfilled over federation; read as in
 * /messages, the gap just after that position. That is what relations.yaml
 * asks for `from`/`to`: "Can be a next_batch or prev_batch token from a
 * previous call, or a returned start token from /messages, or a next_batch
 * token from /sync".
 */

/** The events position of a token, or 400 M_INVALID_PARAM naming the parameter. */
export function eventsPositionParam(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  return requirePaginationPosition(name, value);
}

/** A positive integer parameter, clamped to `max`; 400 M_INVALID_PARAM otherwise. */
export function limitParam(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d{1,15}$/.test(value) || Number(value) < 1) throw Errors.invalidParam('limit must be an integer greater than zero');
  return Math.min(Number(value), max);
}

/** `dir`: b (default) or f. */
export function dirParam(value: string | undefined): 'b' | 'f' {
  if (value === undefined || value === '') return 'b';
  if (value !== 'b' && value !== 'f') throw Errors.invalidParam('dir must be b or f');
  return value;
}

/** A boolean query parameter: true or false. */
export function booleanParam(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw Errors.invalidParam(`${name} must be true or false`);
}

/** `{eventId}`: "format: mx-event-id, pattern: ^\$". */
export function checkEventId(eventId: string): string {
  if (!eventId.startsWith('$') || eventId.length > 255) throw Errors.invalidParam(`Invalid event ID ${JSON.stringify(eventId)}`);
  return eventId;
}
