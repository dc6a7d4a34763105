/**
 * Interop: invites across servers, accepted and rejected, in both
 * directions. The inviter's server sends the invite to the invitee's server
 * (invite v2), the invitee sees it in /sync with the stripped room state,
 * and its accept (a remote join) or reject (a remote leave) reaches the
 * inviter's server.
 *
 * Spec: server-server-api "Inviting to a room" (PUT /_matrix/federation/v2/invite),
 * "Leaving Rooms (Rejecting Invites)" (make_leave/send_leave);
 * client-server-api POST /rooms/{roomId}/invite, /join, /leave, /sync rooms.invite.
 */
import { interopModes, DIRECTIONS, createRoom, sides, useAtrium, interopPeers, usePeer, waitForMembership, waitForSyncRoom, type Side } from '../support/interop';
import type { Json } from '../support/fixtures';

const enc = encodeURIComponent;

describe.each(interopPeers())('invites across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    async function invited(inviterSide: Side, inviteeSide: Side) {
      const inviter = await inviterSide.user('inviter');
      const invitee = await inviteeSide.user('invitee');
      const roomId = await createRoom(inviter, { preset: 'private_chat', name: `Private on ${inviterSide.name}` });
      const res = await inviter.api('POST', `/rooms/${enc(roomId)}/invite`, { user_id: invitee.userId, reason: 'come along' });
      if (res.status !== 200) throw new Error(`invite from ${inviterSide.name}: ${res.status} ${JSON.stringify(res.json)}`);
      return { roomId, inviter, invitee };
    }

    describe.each(DIRECTIONS)('inviter on %s, invitee on %s', (inviterName, inviteeName) => {
      it('the invite reaches the invitee with the stripped state (name, inviter, its own invite)', async () => {
        const { roomId, inviter, invitee } = await invited(side[inviterName], side[inviteeName]);
        const entry = await waitForSyncRoom(invitee, roomId, 'invite');
        const events = (entry.invite_state?.events ?? []) as Json[];
        expect(events.find((e) => e.type === 'm.room.name')?.content).toEqual({ name: `Private on ${inviterName}` });
        expect(events.find((e) => e.type === 'm.room.member' && e.state_key === invitee.userId)).toMatchObject({ sender: inviter.userId, content: { membership: 'invite' } });
        expect(events.some((e) => e.type === 'm.room.join_rules')).toBe(true);
        await waitForMembership(inviter, roomId, invitee.userId, 'invite');
      });

      it('the invitee accepts: joined on both servers', async () => {
        const { roomId, inviter, invitee } = await invited(side[inviterName], side[inviteeName]);
        await waitForSyncRoom(invitee, roomId, 'invite');
        const joined = await invitee.api('POST', `/rooms/${enc(roomId)}/join`, {});
        expect(joined).toMatchObject({ status: 200, json: { room_id: roomId } });
        await waitForMembership(inviter, roomId, invitee.userId, 'join');
        await waitForMembership(invitee, roomId, inviter.userId, 'join');
        expect((await invitee.api('GET', '/joined_rooms')).json.joined_rooms).toContain(roomId);
      });

      it("the invitee rejects: the inviter's server sees the leave and the invite is gone from the invitee's /sync", async () => {
        const { roomId, inviter, invitee } = await invited(side[inviterName], side[inviteeName]);
        await waitForSyncRoom(invitee, roomId, 'invite');
        expect((await invitee.api('POST', `/rooms/${enc(roomId)}/leave`, { reason: 'no thanks' })).status).toBe(200);
        const member = await waitForMembership(inviter, roomId, invitee.userId, 'leave');
        expect(member.reason).toBe('no thanks');
        const sync = await invitee.api('GET', '/sync?timeout=0');
        expect(sync.json.rooms?.invite?.[roomId]).toBeUndefined();
      });
    });

    // A withdrawn invite (the inviter kicks the invited user) is a leave PDU the inviter's server
    // sends to the invitee's server, which is not in the room. Synapse sends it (its federation
    // sender adds the invitee's server when the leave's auth events hold the invite) but ignores
    // one it receives ("Ignoring PDU … as we're not in the room"), so with Synapse only the
    // direction "inviter on the peer" is tested; with an Atrium peer, both.
    describe.each(DIRECTIONS.filter(([inviterName]) => peerKind === 'atrium' || inviterName === 'Peer'))('inviter on %s, invitee on %s', (inviterName, inviteeName) => {
      it("the inviter withdraws the invite (kick of the invited user): the invite leaves the invitee's /sync", async () => {
        const { roomId, inviter, invitee } = await invited(side[inviterName], side[inviteeName]);
        await waitForSyncRoom(invitee, roomId, 'invite');
        expect((await inviter.api('POST', `/rooms/${enc(roomId)}/kick`, { user_id: invitee.userId, reason: 'oops' })).status).toBe(200);
        await waitForSyncRoom(invitee, roomId, 'leave');
        const sync = await invitee.api('GET', '/sync?timeout=0');
        expect(sync.json.rooms?.invite?.[roomId]).toBeUndefined();
      });
    });
  });
});
