import { backupKeyIsBetter } from './e2ee-store';
import { parseSyncTokenPositions } from './e2ee-service';

describe('backupKeyIsBetter (end_to_end_encryption.md "Server-side key backups")', () => {
  const key = (is_verified: boolean, first_message_index: number, forwarded_count: number) => ({ is_verified, first_message_index, forwarded_count });

  it('prefers a verified key whatever its indexes', () => {
    expect(backupKeyIsBetter(key(true, 9, 9), key(false, 0, 0))).toBe(true);
    expect(backupKeyIsBetter(key(false, 0, 0), key(true, 9, 9))).toBe(false);
  });

  it('then the lower first_message_index', () => {
    expect(backupKeyIsBetter(key(false, 1, 5), key(false, 2, 0))).toBe(true);
    expect(backupKeyIsBetter(key(false, 3, 0), key(false, 2, 5))).toBe(false);
  });

  it('then the lower forwarded_count; an equal key does not replace', () => {
    expect(backupKeyIsBetter(key(true, 2, 0), key(true, 2, 1))).toBe(true);
    expect(backupKeyIsBetter(key(true, 2, 1), key(true, 2, 1))).toBe(false);
  });
});

describe('parseSyncTokenPositions', () => {
  it('reads the events and device_lists parts; missing parts are 0', () => {
    expect(parseSyncTokenPositions('s10_1_2_3_4_5_7')).toEqual({ events: 10, deviceLists: 7 });
    expect(parseSyncTokenPositions('s10_1')).toEqual({ events: 10, deviceLists: 0 });
  });

  it('refuses what is not a sync token', () => {
    expect(parseSyncTokenPositions('t10')).toBeNull();
    expect(parseSyncTokenPositions('s1_x')).toBeNull();
  });
});
