import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonObject, RoomEvent } from '@atrium/matrix';
import { EVENTS_STREAM, RoomStore, toClientEvent } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { aggregationsFor, bundleAggregations } from './aggregations';
import { matchText, searchableText, searchTerms, tokenize } from './search-text';
import { ReportStore } from './report-store';
import { checkNewRelation } from './send-checks';

const dir = mkdtempSync(join(tmpdir(), 'atrium-relations-'));
let store: DocumentStore;
let rooms: RoomStore;
let n = 0;

beforeAll(async () => {
  store = await openDocumentStore(`sqlite:${join(dir, 'relations.db')}`);
  rooms = await RoomStore.open(store);
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function ev(roomId: string, sender: string, content: JsonObject, extra: Partial<RoomEvent> = {}): RoomEvent {
  n++;
  return {
    event_id: `$ev${n}`,
    room_id: roomId,
    type: 'm.room.message',
    sender,
    content,
    origin_server_ts: 1_000 + n,
    depth: n,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: 'x' },
    signatures: {},
    ...extra,
  };
}

async function write(e: RoomEvent): Promise<number> {
  return rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
    await rooms.insertEvent({ event: e, stream });
    return stream;
  });
}

const rel = (relType: string, eventId: string, extra: JsonObject = {}): JsonObject => ({ 'm.relates_to': { rel_type: relType, event_id: eventId, ...extra } });

describe('bundled aggregations (client-server-api "Aggregations of child events")', () => {
  it('bundles the most recent valid m.replace, ignoring edits by others, of another type, or without m.new_content', async () => {
    const room = '!agg1:test';
    const original = ev(room, '@a:test', { body: 'hello', msgtype: 'm.text' });
    await write(original);
    const edit1 = ev(room, '@a:test', { body: '* hi', 'm.new_content': { body: 'hi' }, ...rel('m.replace', original.event_id) });
    const byOther = ev(room, '@b:test', { body: '* evil', 'm.new_content': { body: 'evil' }, ...rel('m.replace', original.event_id) }, { origin_server_ts: 9_999_999 });
    const noNewContent = ev(room, '@a:test', { body: '* x', ...rel('m.replace', original.event_id) }, { origin_server_ts: 9_999_998 });
    const otherType = ev(room, '@a:test', { 'm.new_content': { body: 'y' }, ...rel('m.replace', original.event_id) }, { type: 'm.sticker', origin_server_ts: 9_999_997 });
    for (const e of [edit1, byOther, noNewContent, otherType]) await write(e);
    const record = (await rooms.getEvent(original.event_id))!;
    const bundle = (await aggregationsFor(rooms, [record], { userId: '@a:test' })).get(original.event_id)!;
    expect((bundle['m.replace'] as JsonObject)['event_id']).toBe(edit1.event_id);
    // Ties on origin_server_ts go to the lexicographically largest event ID.
    const edit2 = ev(room, '@a:test', { body: '* hey', 'm.new_content': { body: 'hey' }, ...rel('m.replace', original.event_id) }, { origin_server_ts: edit1.origin_server_ts, event_id: '$zz_edit' });
    await write(edit2);
    const again = (await aggregationsFor(rooms, [record], { userId: '@a:test' })).get(original.event_id)!;
    expect((again['m.replace'] as JsonObject)['event_id']).toBe('$zz_edit');
    // A redacted original gets no m.replace bundle.
    await rooms.applyRedaction(original.event_id, { ...original, content: {} }, '$red', {});
    const redacted = (await rooms.getEvent(original.event_id))!;
    expect((await aggregationsFor(rooms, [redacted], { userId: '@a:test' })).get(original.event_id)).toBeUndefined();
  });

  it('bundles m.thread (latest_event, count, current_user_participated) and m.reference, not m.annotation', async () => {
    const room = '!agg2:test';
    const root = ev(room, '@a:test', { body: 'root' });
    await write(root);
    await write(ev(room, '@b:test', { body: 'one', ...rel('m.thread', root.event_id) }));
    const last = ev(room, '@c:test', { body: 'two', ...rel('m.thread', root.event_id) });
    await write(last);
    const ref = ev(room, '@b:test', { body: 'see', ...rel('m.reference', root.event_id) });
    await write(ref);
    await write(ev(room, '@b:test', rel('m.annotation', root.event_id, { key: '👍' }), { type: 'm.reaction' }));
    const record = (await rooms.getEvent(root.event_id))!;
    const events = [toClientEvent(record) as unknown as Record<string, unknown>];
    await bundleAggregations(rooms, events, [record], { userId: '@b:test' });
    const relations = (events[0]['unsigned'] as JsonObject)['m.relations'] as JsonObject;
    expect(Object.keys(relations).sort()).toEqual(['m.reference', 'm.thread']);
    expect(relations['m.thread']).toMatchObject({ count: 2, current_user_participated: true, latest_event: { event_id: last.event_id } });
    expect(relations['m.reference']).toEqual({ chunk: [{ event_id: ref.event_id }] });
    expect(((await aggregationsFor(rooms, [record], { userId: '@z:test' })).get(root.event_id)!['m.thread'] as JsonObject)['current_user_participated']).toBe(false);
    // Ignored users' thread events are not counted.
    const ignoring = (await aggregationsFor(rooms, [record], { userId: '@a:test', ignoredUsers: new Set(['@c:test']) })).get(root.event_id)!;
    expect(ignoring['m.thread']).toMatchObject({ count: 1, current_user_participated: true });
  });
});

describe('search text', () => {
  it('tokenises Unicode text, matches every term by prefix and ranks by term frequency', () => {
    expect(tokenize('Hello, Wörld! 42x')).toEqual(['hello', 'wörld', '42x']);
    expect(searchTerms('Cake cake  PIE')).toEqual(['cake', 'pie']);
    expect(matchText('I like pie', ['cake'])).toBeNull();
    const once = matchText('cake for everyone here today', ['cake'])!;
    const twice = matchText('cake cake for everyone here today', ['cake'])!;
    expect(twice.rank).toBeGreaterThan(once.rank);
    expect(matchText('the martians came', ['mart'])!.matched).toEqual(['martians']);
    expect(matchText('cake only', ['cake', 'pie'])).toBeNull();
  });

  it('reads body, name, topic and m.topic text/plain per requested key', () => {
    const all = new Set(['content.body', 'content.name', 'content.topic'] as const);
    expect(searchableText('m.room.message', { body: 'b' }, all)).toBe('b');
    expect(searchableText('m.room.message', { body: 'b' }, new Set(['content.name'] as const))).toBe('');
    expect(searchableText('m.room.topic', { topic: 't', 'm.topic': { 'm.text': [{ body: 'plain' }, { mimetype: 'text/html', body: '<b>x</b>' }] } }, all)).toBe('t\nplain');
  });
});

describe('ReportStore', () => {
  it('stores reports and lists them newest first per room or user', async () => {
    let now = 1;
    const reports = await ReportStore.open(store, () => now++);
    await reports.add({ kind: 'event', reporter: '@a:test', room_id: '!r:test', event_id: '$e', user_id: '@b:test', reason: 'spam' });
    await reports.add({ kind: 'user', reporter: '@a:test', room_id: null, event_id: null, user_id: '@b:test', reason: '' });
    expect((await reports.list({ userId: '@b:test' })).map((r) => r.kind)).toEqual(['user', 'event']);
    expect((await reports.list({ roomId: '!r:test' })).map((r) => r.reason)).toEqual(['spam']);
  });
});

describe('checkNewRelation (send-time checks)', () => {
  it('refuses a thread off a relation and a duplicate annotation, allows a new key and a redacted duplicate', async () => {
    const room = '!send:test';
    const root = ev(room, '@a:test', { body: 'root' });
    await write(root);
    const inThread = ev(room, '@b:test', { body: 'r', ...rel('m.thread', root.event_id) });
    await write(inThread);
    await expect(checkNewRelation(rooms, room, '@a:test', 'm.room.message', { body: 'x', ...rel('m.thread', inThread.event_id) })).rejects.toMatchObject({ errcode: 'M_UNKNOWN', status: 400 });
    await expect(checkNewRelation(rooms, room, '@a:test', 'm.room.message', { body: 'x', ...rel('m.thread', root.event_id) })).resolves.toBeUndefined();
    const like = ev(room, '@b:test', rel('m.annotation', root.event_id, { key: '👍' }), { type: 'm.reaction' });
    await write(like);
    await expect(checkNewRelation(rooms, room, '@b:test', 'm.reaction', rel('m.annotation', root.event_id, { key: '👍' }))).rejects.toMatchObject({ errcode: 'M_DUPLICATE_ANNOTATION' });
    await expect(checkNewRelation(rooms, room, '@b:test', 'm.reaction', rel('m.annotation', root.event_id, { key: '🎉' }))).resolves.toBeUndefined();
    await expect(checkNewRelation(rooms, room, '@c:test', 'm.reaction', rel('m.annotation', root.event_id, { key: '👍' }))).resolves.toBeUndefined();
    await rooms.applyRedaction(like.event_id, { ...like, content: {} }, '$red2', {});
    await expect(checkNewRelation(rooms, room, '@b:test', 'm.reaction', rel('m.annotation', root.event_id, { key: '👍' }))).resolves.toBeUndefined();
  });
});
