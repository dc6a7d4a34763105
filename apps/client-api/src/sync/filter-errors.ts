import { Errors, MatrixError } from '@atrium/http';
import { FilterValidationError, parseFilter, parseRoomEventFilter, type Filter, type RoomEventFilter } from '@atrium/matrix';

/** A FilterValidationError as the client sees it: 400 with the errcode the validator chose and the field named. */
export function filterError(err: unknown): unknown {
  if (err instanceof FilterValidationError) return new MatrixError(400, err.errcode, `Invalid filter: ${err.message}`);
  return err;
}

/** parseFilter with MatrixErrors. */
export function parseFilterOrThrow(value: unknown): Filter {
  try {
    return parseFilter(value);
  } catch (err) {
    throw filterError(err);
  }
}

/**
 * A filter given in a query parameter as JSON text (/sync `filter` when it
 * starts with `{`, /messages and /context `filter`). Text that is not JSON is
 * M_INVALID_PARAM: the parameter, not a body, is malformed.
 */
export function parseJsonParam(name: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw Errors.invalidParam(`${name} is not valid JSON`);
  }
}

/** The RoomEventFilter of /messages and /context (`filter` query parameter). */
export function parseRoomEventFilterParam(text: string | undefined): RoomEventFilter | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    return parseRoomEventFilter(parseJsonParam('filter', text), 'filter');
  } catch (err) {
    throw filterError(err);
  }
}
