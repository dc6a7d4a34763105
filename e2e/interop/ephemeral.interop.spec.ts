/**
 * Interop: EDUs crossing servers, both ways: typing notifications, read
 * receipts and presence, between a user of each server in a shared room.
 *
 * Spec: server-server-api "Typing Notifications" (m.typing), "Receipts"
 * (m.receipt), "Presence" (m.presence); client-server-api PUT
 * /rooms/{roomId}/typing/{userId}, POST /rooms/{roomId}/receipt/m.read/{eventId},
 * PUT/GET /presence/{userId}/status, /sync ephemeral events.
 */
import { interopModes, DIRECTIONS, federatedRoom, sendText, sides, useAtrium, interopPeers, usePeer, waitForEvent, FEDERATION_WAIT_MS, type PeerUser, waitWithLog } from '../support/interop';
import type { Json } from '../support/fixtures';

const enc = encodeURIComponent;

/** The room's ephemeral events of type `type` in `user`'s (initial) /sync. */
async function ephemeral(user: PeerUser, roomId: string, type: string): Promise<Json[]> {
  const res = await user.api('GET', '/sync?timeout=0');
  const events = (res.json.rooms?.join?.[roomId]?.ephemeral?.events ?? []) as Json[];
  return events.filter((e) => e.type === type);
}

describe.each(interopPeers())('typing, receipts and presence across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    describe.each(DIRECTIONS)('from %s to %s', (fromName, toName) => {
      // The room lives on the sender's server; the receiver joined over federation.
      const room = () => federatedRoom(side[fromName], side[toName]);

      it('typing: the receiver sees the sender typing, then stopping', async () => {
        const { roomId, owner: sender, guest: receiver } = await room();
        expect((await sender.api('PUT', `/rooms/${enc(roomId)}/typing/${enc(sender.userId)}`, { typing: true, timeout: 30_000 })).status).toBe(200);
        await waitWithLog(`${sender.userId} typing as seen on ${toName}`, async () => {
          const typing = await ephemeral(receiver, roomId, 'm.typing');
          return typing.some((e) => (e.content.user_ids as string[]).includes(sender.userId)) ? true : undefined;
        }, FEDERATION_WAIT_MS, 250);
        expect((await sender.api('PUT', `/rooms/${enc(roomId)}/typing/${enc(sender.userId)}`, { typing: false })).status).toBe(200);
        await waitWithLog(`${sender.userId} stopped typing as seen on ${toName}`, async () => {
          const typing = await ephemeral(receiver, roomId, 'm.typing');
          return typing.every((e) => !(e.content.user_ids as string[]).includes(sender.userId)) ? true : undefined;
        }, FEDERATION_WAIT_MS, 250);
      });

      it("receipts: the receiver sees the sender's m.read receipt on the receiver's message", async () => {
        const { roomId, owner: sender, guest: receiver } = await room();
        const eventId = await sendText(receiver, roomId, `read me, ${fromName}`);
        await waitForEvent(sender, roomId, 'the message to read', (e) => e.event_id === eventId);
        expect((await sender.api('POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {})).status).toBe(200);
        const receipt = await waitWithLog(`${sender.userId}'s receipt as seen on ${toName}`, async () => {
          const receipts = await ephemeral(receiver, roomId, 'm.receipt');
          return receipts.map((e) => e.content[eventId]?.['m.read']?.[sender.userId] as Json | undefined).find((r) => r !== undefined);
        }, FEDERATION_WAIT_MS, 250);
        expect(typeof receipt.ts).toBe('number');
      });

      it("presence: the receiver reads the sender's status message and state (shared room)", async () => {
        const { owner: sender, guest: receiver } = await room();
        const statusMsg = `busy on ${fromName} ${Date.now()}`;
        expect((await sender.api('PUT', `/presence/${enc(sender.userId)}/status`, { presence: 'online', status_msg: statusMsg })).status).toBe(200);
        const seen = await waitWithLog(`${sender.userId}'s presence as seen on ${toName}`, async () => {
          const res = await receiver.api('GET', `/presence/${enc(sender.userId)}/status`);
          return res.status === 200 && res.json.status_msg === statusMsg ? res.json : undefined;
        }, FEDERATION_WAIT_MS, 500);
        expect(seen.presence).toBe('online');
      });
    });
  });
});
