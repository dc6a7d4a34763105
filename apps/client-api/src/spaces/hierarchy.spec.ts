import { formatHierarchyToken, isValidChild, orderChildren, parseHierarchyToken, type ChildEvent } from './hierarchy';

const child = (roomId: string, content: Record<string, unknown>, ts = 0): ChildEvent => ({ state_key: roomId, content: { via: ['example.org'], ...content }, origin_server_ts: ts, sender: '@a:example.org' });

describe('space hierarchy helpers', () => {
  it('keeps children with a room ID state key and a non-empty via', () => {
    expect(isValidChild(child('!a:example.org', {}))).toBe(true);
    expect(isValidChild(child('!a:example.org', { via: [] }))).toBe(false);
    expect(isValidChild(child('!a:example.org', { via: 'example.org' }))).toBe(false);
    expect(isValidChild({ ...child('#a:example.org', {}) })).toBe(false);
  });

  it('orders by valid order, then timestamp, then room ID', () => {
    const ordered = orderChildren([
      child('!d:x', {}, 5),
      child('!c:x', {}, 1),
      child('!b:x', { order: 'b' }, 9),
      child('!a:x', { order: 'a' }, 9),
      child('!e:x', { order: 'x'.repeat(51) }, 1),
      child('!f:x', { order: 'é' }, 0),
    ]);
    expect(ordered.map((c) => c.state_key)).toEqual(['!a:x', '!b:x', '!f:x', '!c:x', '!e:x', '!d:x']);
  });

  it('round-trips tokens and refuses others', () => {
    const token = { offset: 20, suggestedOnly: true, maxDepth: 3 };
    expect(parseHierarchyToken(formatHierarchyToken(token))).toEqual(token);
    expect(parseHierarchyToken('s12')).toBeUndefined();
    expect(parseHierarchyToken('h1_2_3')).toBeUndefined();
  });
});
