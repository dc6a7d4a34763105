/**
 * Interop: history from before a user's server joined the room is read with
 * /messages, which makes that server backfill it from the room's home server;
 * in both directions.
 *
 * Spec: server-server-api "Backfilling and retrieving missing events"
 * (GET /_matrix/federation/v1/backfill/{roomId}); client-server-api GET
 * /rooms/{roomId}/messages (dir=b, pagination tokens); history visibility
 * `shared` (the public_chat preset's), under which a joined member may read
 * what was sent before it joined.
 */
import { interopModes, DIRECTIONS, createRoom, joinVia, sendText, sides, useAtrium, interopPeers, usePeer, waitForMembership, type PeerUser } from '../support/interop';
import type { Json } from '../support/fixtures';

const enc = encodeURIComponent;
const EARLY_MESSAGES = 30;

/** Pages backwards through /messages (limit 10 a page) until no `end` token, at most 30 pages; answers every event seen, newest first. */
async function pageBack(user: PeerUser, roomId: string): Promise<Json[]> {
  const all: Json[] = [];
  let from: string | undefined;
  for (let page = 0; page < 30; page++) {
    const res = await user.api('GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=10${from ? `&from=${enc(from)}` : ''}`);
    expect(res.status).toBe(200);
    all.push(...((res.json.chunk as Json[]) ?? []));
    if (!res.json.end || (res.json.chunk as Json[]).length === 0) break;
    from = res.json.end as string;
  }
  return all;
}

describe.each(interopPeers())('backfill across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    describe.each(DIRECTIONS)('room on %s, joined from %s after its history', (homeName, remoteName) => {
      it(`the late member pages back through all ${EARLY_MESSAGES} earlier messages in order, down to the room's creation`, async () => {
        const owner = await side[homeName].user('historian');
        const late = await side[remoteName].user('late');
        const roomId = await createRoom(owner, { preset: 'public_chat', name: 'History' });
        const sent: string[] = [];
        for (let i = 0; i < EARLY_MESSAGES; i++) sent.push(await sendText(owner, roomId, `early ${i}`));

        expect((await joinVia(late, roomId, [side[homeName].serverName()])).status).toBe(200);
        await waitForMembership(owner, roomId, late.userId, 'join');

        const events = await pageBack(late, roomId);
        const early = events.filter((e) => e.type === 'm.room.message' && (e.content.body as string).startsWith('early '));
        // Newest first, each once, all of them.
        expect(early.map((e) => e.event_id)).toEqual([...sent].reverse());
        expect(early.every((e) => e.sender === owner.userId)).toBe(true);
        // Back to the start of the room.
        expect(events.some((e) => e.type === 'm.room.create')).toBe(true);
      });
    });
  });
});
