import { MAIN_THREAD, threadOf, type RelatedEvent } from './threads';

// A and B are thread roots; C is in thread A; R and RR reach C through non-thread relations;
// D0 → D1 → D2 → D3 → D4 is a chain of references ending in thread B.
const events: Record<string, RelatedEvent> = {
  $A: { content: { body: 'root A' } },
  $B: { content: { body: 'root B' } },
  $C: { content: { 'm.relates_to': { rel_type: 'm.thread', event_id: '$A' } } },
  $R: { content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$C', key: '👍' } } },
  $RR: { content: { 'm.relates_to': { rel_type: 'm.reference', event_id: '$R' } } },
  $ROOT_EDIT: { content: { 'm.relates_to': { rel_type: 'm.replace', event_id: '$A' } } },
  $D0: { content: { 'm.relates_to': { rel_type: 'm.reference', event_id: '$D1' } } },
  $D1: { content: { 'm.relates_to': { rel_type: 'm.reference', event_id: '$D2' } } },
  $D2: { content: { 'm.relates_to': { rel_type: 'm.reference', event_id: '$D3' } } },
  $D3: { content: { 'm.relates_to': { rel_type: 'm.reference', event_id: '$D4' } } },
  $D4: { content: { 'm.relates_to': { rel_type: 'm.thread', event_id: '$B' } } },
};
const load = async (id: string): Promise<RelatedEvent | null> => events[id] ?? null;

describe('threadOf (client-server-api "Threading")', () => {
  it('an event with rel_type m.thread is in that thread', async () => {
    expect(await threadOf(events.$C, load)).toBe('$A');
  });

  it('thread roots and plain events are in the main timeline', async () => {
    expect(await threadOf(events.$A, load)).toBe(MAIN_THREAD);
    expect(await threadOf({ content: { 'm.relates_to': 'not an object' } }, load)).toBe(MAIN_THREAD);
    expect(await threadOf({ content: { 'm.relates_to': { rel_type: 'm.thread' } } }, load)).toBe(MAIN_THREAD);
  });

  it('follows non-thread relations to a threaded parent', async () => {
    expect(await threadOf(events.$R, load)).toBe('$A');
    expect(await threadOf(events.$RR, load)).toBe('$A');
  });

  it('an event related to a thread root by a non-thread relation is in the main timeline', async () => {
    expect(await threadOf(events.$ROOT_EDIT, load)).toBe(MAIN_THREAD);
  });

  it('stops after 3 hops, and at unknown parents', async () => {
    // D1 reaches D4, whose relation names the root, in 3 hops; D0 would need 4.
    expect(await threadOf(events.$D1, load)).toBe('$B');
    expect(await threadOf(events.$D0, load)).toBe(MAIN_THREAD);
    expect(await threadOf({ content: { 'm.relates_to': { rel_type: 'm.reference', event_id: '$nope' } } }, load)).toBe(MAIN_THREAD);
  });
});
