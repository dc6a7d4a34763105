/**
 * Interop: a room created on one server is joined from the other, and
 * messages sent on either side are seen on both; in both directions
 * (Atrium hosts, Synapse joins; Synapse hosts, Atrium joins).
 *
 * Spec: server-server-api "Joining Rooms" (make_join/send_join), "Transactions"
 * (PUT /send carrying the PDUs); client-server-api POST /join/{roomIdOrAlias}
 * with `via`/`server_name`.
 */
import { interopModes, DIRECTIONS, federatedRoom, joinVia, createRoom, sendText, sides, stateIds, useAtrium, interopPeers, usePeer, waitForEvent, waitForMembership } from '../support/interop';


describe.each(interopPeers())('joining across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    describe.each(DIRECTIONS)('room on %s, joined from %s', (homeName, remoteName) => {
      const home = () => side[homeName];
      const remote = () => side[remoteName];

      it('the remote user joins by room ID; both servers list both members and the same room state', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote(), { name: `Room on ${homeName}` });
        const onRemote = await owner.api('GET', `/rooms/${encodeURIComponent(roomId)}/joined_members`);
        expect(Object.keys(onRemote.json.joined).sort()).toEqual([owner.userId, guest.userId].sort());
        const seenByGuest = await guest.api('GET', `/rooms/${encodeURIComponent(roomId)}/joined_members`);
        expect(Object.keys(seenByGuest.json.joined).sort()).toEqual([owner.userId, guest.userId].sort());
        expect(await guest.api('GET', `/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`)).toMatchObject({ status: 200, json: { name: `Room on ${homeName}` } });
        expect((await guest.api('GET', '/joined_rooms')).json.joined_rooms).toContain(roomId);
        // Same current state on both sides once the join has settled.
        expect(await stateIds(guest, roomId)).toEqual(await stateIds(owner, roomId));
      });

      it('messages sent on either side arrive on the other, with their content and sender', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        const fromOwner = await sendText(owner, roomId, `hello from ${homeName}`);
        const fromGuest = await sendText(guest, roomId, `hello from ${remoteName}`);
        const seenByGuest = await waitForEvent(guest, roomId, 'the owner message', (e) => e.event_id === fromOwner);
        expect(seenByGuest).toMatchObject({ sender: owner.userId, type: 'm.room.message', content: { msgtype: 'm.text', body: `hello from ${homeName}` } });
        const seenByOwner = await waitForEvent(owner, roomId, 'the guest message', (e) => e.event_id === fromGuest);
        expect(seenByOwner).toMatchObject({ sender: guest.userId, type: 'm.room.message', content: { msgtype: 'm.text', body: `hello from ${remoteName}` } });
      });

      it('the remote user leaves; the home server sees the leave and the remote user can join again', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        expect((await guest.api('POST', `/rooms/${encodeURIComponent(roomId)}/leave`, {})).status).toBe(200);
        await waitForMembership(owner, roomId, guest.userId, 'leave');
        expect((await joinVia(guest, roomId, [home().serverName()])).status).toBe(200);
        await waitForMembership(owner, roomId, guest.userId, 'join');
      });

      it('a join to a room the home server does not have fails with a Matrix error, not a hang', async () => {
        const guest = await remote().user('lost');
        const owner = await home().user('owner');
        // A real room ID of the home server's format whose room was never created there: create one
        // elsewhere-shaped by taking a fresh room's ID and altering its opaque part.
        const realId = await createRoom(owner, { preset: 'public_chat' });
        const missing = realId.replace(/^!./, (m) => (m[1] === 'Z' ? '!Y' : '!Z'));
        const res = await joinVia(guest, missing, [home().serverName()]);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(typeof res.json.errcode).toBe('string');
      });
    });
  });
});
