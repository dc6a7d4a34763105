/**
 * Backfill between two Atrium servers over TLS (docs/federation-design.md
 * "Backfill (as built)"; server-server-api "Backfilling and retrieving
 * missing events"; client-server-api GET /rooms/{roomId}/messages and
 * "History visibility"). A user of B joins a room of A after its history;
 * B's /messages backfills it from A. Backfilled events are history: they
 * must not come down /sync as new, and history visibility still applies.
 */
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { newUser, rawApi, rawSync, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const PASSWORD = 'pw-backfill-123';
const enc = encodeURIComponent;
const EARLY = 25;

/** Both modes by default; `ATRIUM_FEDERATION_MODES=embedded` for a quick run. */
const modes = (process.env.ATRIUM_FEDERATION_MODES ?? 'embedded,cluster').split(',').map((m) => m.trim()).filter((m): m is Mode => m === 'embedded' || m === 'cluster');

describe.each(modes)('backfill between two Atrium servers (%s mode)', (mode) => {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    ca = createTestCa();
    const options = { federationTls: ca, env: REGISTER_BURST_ENV };
    [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
  }, 300_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const api = (server: TestServer, user: TestUser, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> =>
    rawApi(server.baseUrl, user.token, method, path, body);

  /** Pages back (limit 7) until no `end`; every event seen, newest first. */
  async function pageBack(server: TestServer, user: TestUser, roomId: string): Promise<Json[]> {
    const all: Json[] = [];
    let from: string | undefined;
    for (let page = 0; page < 40; page++) {
      const res = await api(server, user, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=7${from ? `&from=${enc(from)}` : ''}`);
      expect(res.status).toBe(200);
      const chunk = (res.json.chunk as Json[]) ?? [];
      all.push(...chunk);
      if (!res.json.end || chunk.length === 0) break;
      from = res.json.end as string;
    }
    return all;
  }

  async function roomWithHistory(owner: TestUser, visibility: string): Promise<{ roomId: string; sent: string[] }> {
    const created = await api(a, owner, 'POST', '/createRoom', {
      preset: 'public_chat',
      name: 'History',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: visibility } }],
    });
    expect(created.status).toBe(200);
    const roomId = created.json.room_id as string;
    const sent: string[] = [];
    for (let i = 0; i < EARLY; i++) {
      const res = await api(a, owner, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/early-${visibility}-${i}`, { msgtype: 'm.text', body: `early ${i}` });
      expect(res.status).toBe(200);
      sent.push(res.json.event_id as string);
    }
    return { roomId, sent };
  }

  it('a late member of B pages back through the history A had before the join, in order, down to the creation; none of it comes down /sync as new', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const { roomId, sent } = await roomWithHistory(alice, 'shared');
    const joined = await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(joined.status).toBe(200);
    const before = await rawSync(b.baseUrl, bob.token);

    const events = await pageBack(b, bob, roomId);
    const early = events.filter((e) => e.type === 'm.room.message');
    expect(early.map((e) => e.event_id)).toEqual([...sent].reverse());
    expect(events.some((e) => e.type === 'm.room.create')).toBe(true);
    // Each event once.
    expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);

    // /search reaches the backfilled history, with /messages tokens into it in the context.
    const search = await api(b, bob, 'POST', '/search', {
      search_categories: { room_events: { search_term: 'early', filter: { rooms: [roomId], limit: 50 }, order_by: 'recent', event_context: { before_limit: 1, after_limit: 1 } } },
    });
    expect(search.status).toBe(200);
    const found = search.json.search_categories.room_events;
    expect(found.count).toBe(EARLY);
    expect((found.results as Json[]).map((r) => r.result.event_id)).toEqual([...sent].reverse());
    const oldest = (found.results as Json[]).at(-1)!;
    expect(oldest.context.start).toMatch(/^b\d+$/);
    const around = await api(b, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=1&from=${enc(oldest.context.start as string)}`);
    expect(around.status).toBe(200);

    // Paging again reads the stored history (no duplicates from a second backfill).
    const again = await pageBack(b, bob, roomId);
    expect(again.map((e) => e.event_id)).toEqual(events.map((e) => e.event_id));

    // History, not news: an incremental /sync after the backfill carries none of it.
    const after = await rawSync(b.baseUrl, bob.token, { since: before.next_batch as string, timeout: '0' });
    const timeline = ((after.rooms?.join?.[roomId] as Json | undefined)?.timeline?.events as Json[] | undefined) ?? [];
    expect(timeline.filter((e) => sent.includes(e.event_id as string))).toEqual([]);
    // The room's current state is unchanged by the older state events backfilled.
    const name = await api(b, bob, 'GET', `/rooms/${enc(roomId)}/state/m.room.name/`);
    expect(name.json).toEqual({ name: 'History' });
  });

  it('a message redacted before the join comes back from backfill redacted, with redacted_because, whichever batch brought the redaction', async () => {
    const alice = await newUser(a.baseUrl, 'alice3', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob3', PASSWORD);
    const { roomId, sent } = await roomWithHistory(alice, 'shared');
    // The oldest message and one in the middle are redacted, so their redactions come in
    // another /backfill batch than the message, or in the same one.
    const redactions = new Map<string, string>();
    for (const [i, target] of [sent[0], sent[EARLY - 3]].entries()) {
      const res = await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(target)}/r-${i}`, { reason: `spoiler ${i}` });
      expect(res.status).toBe(200);
      redactions.set(target, res.json.event_id as string);
    }
    for (let i = 0; i < EARLY; i++) {
      expect((await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/late-${i}`, { msgtype: 'm.text', body: `late ${i}` })).status).toBe(200);
    }
    expect((await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);

    const events = await pageBack(b, bob, roomId);
    for (const [target, redactionId] of redactions) {
      const seen = events.find((e) => e.event_id === target);
      expect(seen).toBeDefined();
      expect(seen!.content).toEqual({});
      expect((seen!.unsigned as Json | undefined)?.redacted_because?.event_id).toBe(redactionId);
      expect(events.some((e) => e.event_id === redactionId && e.type === 'm.room.redaction')).toBe(true);
      // The single-event read agrees.
      const one = await api(b, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(target)}`);
      expect(one.status).toBe(200);
      expect(one.json.content).toEqual({});
      expect((one.json.unsigned as Json | undefined)?.redacted_because?.event_id).toBe(redactionId);
    }
    // The others are untouched.
    const kept = events.find((e) => e.event_id === sent[1]);
    expect(kept?.content).toEqual({ msgtype: 'm.text', body: 'early 1' });
  });

  it('edits and thread replies made before the join are bundled on the backfilled messages they relate to', async () => {
    const alice = await newUser(a.baseUrl, 'alice4', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob4', PASSWORD);
    const { roomId, sent } = await roomWithHistory(alice, 'shared');
    const put = async (txn: string, content: Json): Promise<string> => {
      const res = await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${txn}`, content);
      expect(res.status).toBe(200);
      return res.json.event_id as string;
    };
    const edit = await put('edit', { msgtype: 'm.text', body: '* early 2, edited', 'm.new_content': { msgtype: 'm.text', body: 'early 2, edited' }, 'm.relates_to': { rel_type: 'm.replace', event_id: sent[2] } });
    const replies = [await put('t0', { msgtype: 'm.text', body: 'in thread 0', 'm.relates_to': { rel_type: 'm.thread', event_id: sent[3] } })];
    replies.push(await put('t1', { msgtype: 'm.text', body: 'in thread 1', 'm.relates_to': { rel_type: 'm.thread', event_id: sent[3] } }));
    expect((await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);

    const events = await pageBack(b, bob, roomId);
    const relations = (id: string): Json | undefined => (events.find((e) => e.event_id === id)?.unsigned as Json | undefined)?.['m.relations'];
    expect(relations(sent[2])?.['m.replace']?.event_id).toBe(edit);
    expect(relations(sent[3])?.['m.thread']).toMatchObject({ count: 2, current_user_participated: false, latest_event: { event_id: replies[1] } });
    // The same through GET /event.
    const one = await api(b, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(sent[2])}`);
    expect((one.json.unsigned as Json)['m.relations']?.['m.replace']?.event_id).toBe(edit);

    // GET /relations reaches the backfilled replies, a page at a time (tokens into backfilled history).
    const v1 = (path: string) => rawApi(b.baseUrl, bob.token, 'GET', path, undefined, '/_matrix/client/v1');
    const page1 = await v1(`/rooms/${enc(roomId)}/relations/${enc(sent[3])}/m.thread?limit=1`);
    expect(page1.status).toBe(200);
    expect((page1.json.chunk as Json[]).map((e) => e.event_id)).toEqual([replies[1]]);
    expect(page1.json.next_batch).toEqual(expect.any(String));
    const page2 = await v1(`/rooms/${enc(roomId)}/relations/${enc(sent[3])}/m.thread?limit=1&from=${enc(page1.json.next_batch as string)}`);
    expect((page2.json.chunk as Json[]).map((e) => e.event_id)).toEqual([replies[0]]);
    // GET /threads lists the backfilled thread.
    const threads = await v1(`/rooms/${enc(roomId)}/threads`);
    expect((threads.json.chunk as Json[]).map((e) => e.event_id)).toContain(sent[3]);
  });

  it("history visibility `joined` still applies: the backfilled messages from before bob's join are not given to him", async () => {
    const alice = await newUser(a.baseUrl, 'alice2', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob2', PASSWORD);
    const { roomId, sent } = await roomWithHistory(alice, 'joined');
    expect((await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);
    const events = await pageBack(b, bob, roomId);
    expect(events.filter((e) => sent.includes(e.event_id as string))).toEqual([]);
    // bob's own join is there.
    expect(events.some((e) => e.type === 'm.room.member' && e.state_key === bob.userId)).toBe(true);
  });
});
