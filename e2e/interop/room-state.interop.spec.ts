/**
 * Interop: room state changed on one server is seen on the other: name,
 * topic, power levels and join rules, set by the room's owner on its home
 * server and by a remote user given power; in both directions.
 *
 * Spec: server-server-api "Transactions" (state PDUs), "Checks performed on
 * receipt of a PDU" (the remote's change is authorised by the power levels
 * the home server sent); client-server-api PUT/GET /rooms/{roomId}/state.
 */
import { interopModes, DIRECTIONS, federatedRoom, putState, sides, stateIds, useAtrium, interopPeers, usePeer, waitForState, type PeerUser, waitWithLog } from '../support/interop';


describe.each(interopPeers())('room state across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    /** Waits until both users read the same current state (same event per type and state key). */
    async function sameState(a: PeerUser, b: PeerUser, roomId: string): Promise<void> {
      await waitWithLog(`the same /state on both servers for ${roomId}`, async () => {
        const [x, y] = await Promise.all([stateIds(a, roomId), stateIds(b, roomId)]);
        return JSON.stringify([...x].sort()) === JSON.stringify([...y].sort()) ? true : undefined;
      }, 30_000, 500);
    }

    describe.each(DIRECTIONS)('room on %s, remote user from %s', (homeName, remoteName) => {
      const home = () => side[homeName];
      const remote = () => side[remoteName];

      it("the owner's name, topic and join rules reach the remote member", async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        await putState(owner, roomId, 'm.room.name', '', { name: `Named on ${homeName}` });
        await putState(owner, roomId, 'm.room.topic', '', { topic: `Topic from ${homeName}` });
        await putState(owner, roomId, 'm.room.join_rules', '', { join_rule: 'invite' });
        await waitForState(guest, roomId, 'm.room.name', '', (c) => c.name === `Named on ${homeName}`);
        await waitForState(guest, roomId, 'm.room.topic', '', (c) => c.topic === `Topic from ${homeName}`);
        await waitForState(guest, roomId, 'm.room.join_rules', '', (c) => c.join_rule === 'invite');
        await sameState(owner, guest, roomId);
      });

      it('power levels granted to the remote user reach it, and its own name and topic changes reach the home server', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        const levels = await owner.api('GET', `/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`);
        expect(levels.status).toBe(200);
        const users = { ...(levels.json.users as Record<string, number>), [guest.userId]: 50 };
        await putState(owner, roomId, 'm.room.power_levels', '', { ...levels.json, users });
        await waitForState(guest, roomId, 'm.room.power_levels', '', (c) => c.users?.[guest.userId] === 50);

        // state_default is 50 in the presets: the remote user may now set the name and topic.
        await putState(guest, roomId, 'm.room.topic', '', { topic: `Topic from ${remoteName}` });
        await putState(guest, roomId, 'm.room.name', '', { name: `Named on ${remoteName}` });
        await waitForState(owner, roomId, 'm.room.topic', '', (c) => c.topic === `Topic from ${remoteName}`);
        await waitForState(owner, roomId, 'm.room.name', '', (c) => c.name === `Named on ${remoteName}`);
        await sameState(owner, guest, roomId);
      });

      it('a remote member without power cannot change the power levels: refused on its own server, nothing reaches the home server', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        const levels = await guest.api('GET', `/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`);
        expect(levels.status).toBe(200);
        const res = await guest.api('PUT', `/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`, { ...levels.json, users: { ...(levels.json.users as object), [guest.userId]: 100 } });
        expect(res.status).toBe(403);
        expect(res.json.errcode).toBe('M_FORBIDDEN');
        const onHome = await owner.api('GET', `/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`);
        expect(onHome.json.users?.[guest.userId]).toBeUndefined();
      });
    });
  });
});
