import { MatrixError } from '@atrium/http';
import { ignoredUsersOf, validateIgnoredUserList } from './ignored-users';

function errcodeOf(content: Record<string, unknown>): string | null {
  try {
    validateIgnoredUserList(content);
    return null;
  } catch (err) {
    return err instanceof MatrixError ? `${err.status} ${err.errcode}` : String(err);
  }
}

describe('m.ignored_user_list', () => {
  it('accepts a map of user IDs to objects, the empty map included', () => {
    expect(errcodeOf({ ignored_users: { '@a:x': {}, '@b:y.org': { future: 1 } } })).toBeNull();
    expect(errcodeOf({ ignored_users: {} })).toBeNull();
  });

  it('refuses content the server could not read', () => {
    expect(errcodeOf({})).toBe('400 M_BAD_JSON');
    expect(errcodeOf({ ignored_users: ['@a:x'] })).toBe('400 M_BAD_JSON');
    expect(errcodeOf({ ignored_users: '@a:x' })).toBe('400 M_BAD_JSON');
    expect(errcodeOf({ ignored_users: { '@a:x': true } })).toBe('400 M_BAD_JSON');
    expect(errcodeOf({ ignored_users: { 'not-a-user': {} } })).toBe('400 M_INVALID_PARAM');
    expect(errcodeOf({ ignored_users: { '@nodomain': {} } })).toBe('400 M_INVALID_PARAM');
  });

  it('reads stored content leniently and never ignores the user themselves', () => {
    expect(ignoredUsersOf('@me:x', { ignored_users: { '@a:x': {}, '@me:x': {}, junk: {} } })).toEqual(new Set(['@a:x']));
    expect(ignoredUsersOf('@me:x', { ignored_users: ['@a:x'] })).toEqual(new Set());
    expect(ignoredUsersOf('@me:x', null)).toEqual(new Set());
  });
});
