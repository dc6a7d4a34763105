import { Errors } from '@atrium/http';

/**
 * Query parameters shared by /relations, /threads and /search.
 *
 * Pagination tokens are the sync token format (docs/client-server-design.md
 * "Sync tokens": `s<events>_…`), of which only the events position counts,
 * read as in /messages: the gap just after that position. That is what
 * relations.yaml asks for `from`/`to`: "Can be a next_batch or prev_batch
 * token from a previous call, or a returned start token from /messages, or a
 * next_batch token from /sync".
 */
const TOKEN = /^s(\d{1,15})((?:_\d{1,15}){0,31})$/;

/** The events position of a token, or 400 M_INVALID_PARAM naming the parameter. */
export function eventsPositionParam(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const match = TOKEN.exec(value);
  if (!match) throw Errors.invalidParam(`${name} is not a valid pagination token`);
  return Number(match[1]);
}

/** A token for events position `position` (other streams 0, as /messages tokens are read). */
export function positionToken(position: number): string {
  return `s${Math.max(0, position)}`;
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
