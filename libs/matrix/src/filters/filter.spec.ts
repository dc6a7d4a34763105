/** Filters: data/api/client-server/definitions/{sync_filter,room_event_filter,event_filter}.yaml, appendices "Dot-separated property paths". */
import {
  effectiveLimit,
  eventMatchesFilter,
  eventTypeMatches,
  filterRooms,
  FilterValidationError,
  includeRedundantMembers,
  lazyLoadMembers,
  parseFilter,
  parseRoomEventFilter,
  projectEventFields,
  roomMatchesFilter,
  splitPropertyPath,
} from './filter';

function errorOf(fn: () => unknown): FilterValidationError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FilterValidationError) return err;
    throw err;
  }
  throw new Error('expected a FilterValidationError');
}

describe('parseFilter', () => {
  it('accepts the spec example and keeps every field', () => {
    const example = {
      room: {
        state: { types: ['m.room.*'], not_rooms: ['!726s6s6q:example.com'] },
        timeline: { limit: 10, types: ['m.room.message'], not_rooms: ['!726s6s6q:example.com'], not_senders: ['@spam:example.com'] },
        ephemeral: { types: ['m.receipt', 'm.typing'], not_rooms: ['!726s6s6q:example.com'], not_senders: ['@spam:example.com'] },
      },
      presence: { types: ['m.presence'], not_senders: ['@alice:example.com'] },
      event_format: 'client',
      event_fields: ['type', 'content', 'sender'],
    };
    expect(parseFilter(example)).toEqual(example);
  });

  it('accepts the empty filter and ignores unknown keys', () => {
    expect(parseFilter({})).toEqual({});
    expect(parseFilter({ org_example: 1, room: { timeline: { foo: true } } })).toEqual({ room: { timeline: {} } });
  });

  it('keeps the room event filter flags', () => {
    const f = parseFilter({
      room: {
        include_leave: true,
        rooms: ['!a:x'],
        timeline: { lazy_load_members: true, include_redundant_members: true, unread_thread_notifications: true, contains_url: false },
      },
    });
    expect(f.room?.include_leave).toBe(true);
    expect(f.room?.timeline).toEqual({ lazy_load_members: true, include_redundant_members: true, unread_thread_notifications: true, contains_url: false });
  });

  it.each([
    [[], 'filter', 'M_BAD_JSON'],
    ['x', 'filter', 'M_BAD_JSON'],
    [{ event_fields: 'type' }, 'event_fields', 'M_BAD_JSON'],
    [{ event_fields: [1] }, 'event_fields', 'M_BAD_JSON'],
    [{ event_format: 3 }, 'event_format', 'M_BAD_JSON'],
    [{ event_format: 'raw' }, 'event_format', 'M_INVALID_PARAM'],
    [{ presence: [] }, 'presence', 'M_BAD_JSON'],
    [{ presence: { limit: '5' } }, 'presence.limit', 'M_BAD_JSON'],
    [{ account_data: { types: 'm.tag' } }, 'account_data.types', 'M_BAD_JSON'],
    [{ room: 1 }, 'room', 'M_BAD_JSON'],
    [{ room: { rooms: ['#alias:x'] } }, 'room.rooms', 'M_INVALID_PARAM'],
    [{ room: { not_rooms: [null] } }, 'room.not_rooms', 'M_BAD_JSON'],
    [{ room: { include_leave: 'yes' } }, 'room.include_leave', 'M_BAD_JSON'],
    [{ room: { timeline: { limit: 0 } } }, 'room.timeline.limit', 'M_INVALID_PARAM'],
    [{ room: { timeline: { limit: -3 } } }, 'room.timeline.limit', 'M_INVALID_PARAM'],
    [{ room: { timeline: { limit: 1.5 } } }, 'room.timeline.limit', 'M_BAD_JSON'],
    [{ room: { state: { senders: ['alice'] } } }, 'room.state.senders', 'M_INVALID_PARAM'],
    [{ room: { state: { not_senders: ['@a:x', 7] } } }, 'room.state.not_senders', 'M_BAD_JSON'],
    [{ room: { state: { lazy_load_members: 1 } } }, 'room.state.lazy_load_members', 'M_BAD_JSON'],
    [{ room: { ephemeral: { contains_url: 'true' } } }, 'room.ephemeral.contains_url', 'M_BAD_JSON'],
    [{ room: { account_data: [] } }, 'room.account_data', 'M_BAD_JSON'],
    [{ room: { timeline: { types: new Array(1001).fill('m.x') } } }, 'room.timeline.types', 'M_INVALID_PARAM'],
    [{ room: { timeline: { types: ['x'.repeat(2000)] } } }, 'room.timeline.types', 'M_INVALID_PARAM'],
  ])('refuses %j at %s with %s', (input, field, errcode) => {
    const err = errorOf(() => parseFilter(input));
    expect(err.field).toBe(field);
    expect(err.errcode).toBe(errcode);
  });

  it('accepts a large limit and clamps it when used', () => {
    const f = parseRoomEventFilter({ limit: 1_000_000 });
    expect(f.limit).toBe(1_000_000);
    expect(effectiveLimit(f, 10, 100)).toBe(100);
    expect(effectiveLimit(undefined, 10, 100)).toBe(10);
    expect(effectiveLimit({ limit: 3 }, 10, 100)).toBe(3);
  });
});

describe('eventTypeMatches', () => {
  it.each([
    ['m.room.message', 'm.room.message', true],
    ['m.room.message', 'm.room.messages', false],
    ['m.room.*', 'm.room.message', true],
    ['m.room.*', 'm.room.', true],
    ['m.room.*', 'm.roomy', false],
    ['*', 'anything', true],
    ['*.member', 'm.room.member', true],
    ['m.*.name', 'm.room.name', true],
    ['m.*.name', 'm.room.topic', false],
    // "." and other regex characters are literal, only "*" is special.
    ['m.room.messag.', 'm.room.messagX', false],
    ['a+b', 'a+b', true],
    ['a+b*', 'aab', false],
    ['m.(x)*', 'm.(x)yz', true],
  ])('%s vs %s -> %s', (pattern, type, expected) => {
    expect(eventTypeMatches(pattern, type)).toBe(expected);
  });
});

describe('eventMatchesFilter', () => {
  const msg = { type: 'm.room.message', sender: '@alice:x', room_id: '!r:x', content: { body: 'hi' } };
  const image = { type: 'm.room.message', sender: '@bob:x', room_id: '!s:x', content: { body: 'pic', url: 'mxc://x/y' } };

  it('passes everything with no filter or an empty one', () => {
    expect(eventMatchesFilter(undefined, msg)).toBe(true);
    expect(eventMatchesFilter({}, msg)).toBe(true);
  });

  it('types include, not_types win over types', () => {
    expect(eventMatchesFilter({ types: ['m.room.*'] }, msg)).toBe(true);
    expect(eventMatchesFilter({ types: ['m.room.member'] }, msg)).toBe(false);
    expect(eventMatchesFilter({ types: ['m.room.*'], not_types: ['m.room.message'] }, msg)).toBe(false);
    expect(eventMatchesFilter({ types: ['m.room.message'], not_types: ['*'] }, msg)).toBe(false);
  });

  it('an empty include list includes nothing', () => {
    expect(eventMatchesFilter({ types: [] }, msg)).toBe(false);
    expect(eventMatchesFilter({ senders: [] }, msg)).toBe(false);
    expect(eventMatchesFilter({ rooms: [] }, msg)).toBe(false);
  });

  it('senders include, not_senders win', () => {
    expect(eventMatchesFilter({ senders: ['@alice:x'] }, msg)).toBe(true);
    expect(eventMatchesFilter({ senders: ['@bob:x'] }, msg)).toBe(false);
    expect(eventMatchesFilter({ senders: ['@alice:x'], not_senders: ['@alice:x'] }, msg)).toBe(false);
  });

  it('rooms include, not_rooms win', () => {
    expect(eventMatchesFilter({ rooms: ['!r:x'] }, msg)).toBe(true);
    expect(eventMatchesFilter({ rooms: ['!s:x'] }, msg)).toBe(false);
    expect(eventMatchesFilter({ rooms: ['!r:x'], not_rooms: ['!r:x'] }, msg)).toBe(false);
  });

  it('contains_url true keeps only events with a url, false only those without', () => {
    expect(eventMatchesFilter({ contains_url: true }, image)).toBe(true);
    expect(eventMatchesFilter({ contains_url: true }, msg)).toBe(false);
    expect(eventMatchesFilter({ contains_url: false }, image)).toBe(false);
    expect(eventMatchesFilter({ contains_url: false }, msg)).toBe(true);
  });

  it('all conditions must hold', () => {
    const f = { types: ['m.room.message'], senders: ['@bob:x'], rooms: ['!s:x'], contains_url: true };
    expect(eventMatchesFilter(f, image)).toBe(true);
    expect(eventMatchesFilter(f, msg)).toBe(false);
  });
});

describe('rooms', () => {
  it('roomMatchesFilter and filterRooms: not_rooms applied before rooms', () => {
    expect(roomMatchesFilter(undefined, '!a:x')).toBe(true);
    expect(roomMatchesFilter({ not_rooms: ['!a:x'] }, '!a:x')).toBe(false);
    expect(filterRooms({ rooms: ['!a:x', '!b:x'], not_rooms: ['!b:x'] }, ['!a:x', '!b:x', '!c:x'])).toEqual(['!a:x']);
    expect(filterRooms(undefined, ['!a:x', '!c:x'])).toEqual(['!a:x', '!c:x']);
  });
});

describe('lazy loading flags', () => {
  it('include_redundant_members only applies with lazy_load_members', () => {
    expect(lazyLoadMembers({ lazy_load_members: true })).toBe(true);
    expect(lazyLoadMembers(undefined)).toBe(false);
    expect(includeRedundantMembers({ include_redundant_members: true })).toBe(false);
    expect(includeRedundantMembers({ include_redundant_members: true, lazy_load_members: true })).toBe(true);
  });
});

describe('event_fields', () => {
  it('splits dot-separated property paths with escapes', () => {
    expect(splitPropertyPath('content.body')).toEqual(['content', 'body']);
    expect(splitPropertyPath('content.m\\.relates_to')).toEqual(['content', 'm.relates_to']);
    expect(splitPropertyPath('content.m\\\\foo')).toEqual(['content', 'm\\foo']);
    // "Other escape sequences are left as-is".
    expect(splitPropertyPath('content.\\x')).toEqual(['content', '\\x']);
  });

  const event = {
    type: 'm.room.message',
    sender: '@a:x',
    event_id: '$e',
    content: { body: 'hi', msgtype: 'm.text', 'm.relates_to': { rel_type: 'm.thread', event_id: '$root' } },
    unsigned: { age: 5 },
  };

  it('keeps the whole event without a list', () => {
    expect(projectEventFields(event, undefined)).toBe(event);
  });

  it('keeps only the listed paths', () => {
    expect(projectEventFields(event, ['type', 'content.body'])).toEqual({ type: 'm.room.message', content: { body: 'hi' } });
    expect(projectEventFields(event, ['content.m\\.relates_to.rel_type', 'sender'])).toEqual({
      sender: '@a:x',
      content: { 'm.relates_to': { rel_type: 'm.thread' } },
    });
    expect(projectEventFields(event, ['content', 'content.body'])).toEqual({ content: event.content });
  });

  it('skips missing paths and leaves the input alone', () => {
    expect(projectEventFields(event, ['content.nope', 'state_key', 'type.length'])).toEqual({});
    const copy = projectEventFields(event, ['content']);
    (copy.content as { body: string }).body = 'changed';
    expect(event.content.body).toBe('hi');
  });

  it('does not let __proto__ paths pollute objects', () => {
    const hostile = JSON.parse('{"type":"x","__proto__":{"polluted":true}}') as Record<string, unknown>;
    const out = projectEventFields(hostile, ['__proto__.polluted']) as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  });
});
