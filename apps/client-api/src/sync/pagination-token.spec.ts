/**
 * /messages tokens below 0 (docs/federation-design.md "Backfill (as built)"):
 * backfilled history takes negative positions, written `b<n>`; from 0 up the
 * sync token format stays, so a sync's next_batch still works as `from`.
 */
import { MatrixError } from '@atrium/http';
import { eventsToken, paginationToken, requirePaginationPosition } from './sync-token';

describe('pagination tokens', () => {
  it('round-trips negative, zero and positive positions', () => {
    for (const position of [Number.MIN_SAFE_INTEGER, -12345, -1, 0, 1, 987654]) {
      expect(requirePaginationPosition('from', paginationToken(position))).toBe(position);
    }
    expect(paginationToken(-7)).toBe('b7');
    expect(paginationToken(7)).toBe(eventsToken(7));
  });

  it('reads a sync token as its events position', () => {
    expect(requirePaginationPosition('from', 's42_1_2_3_4_5_6')).toBe(42);
  });

  it('refuses anything else with M_INVALID_PARAM naming the parameter', () => {
    for (const bad of ['b', 'b-1', 'bx', 'b99999999999999999', 'x5', '']) {
      let error: unknown;
      try {
        requirePaginationPosition('to', bad);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(MatrixError);
      expect((error as MatrixError).errcode).toBe('M_INVALID_PARAM');
      expect((error as MatrixError).message).toContain('to');
    }
  });
});
