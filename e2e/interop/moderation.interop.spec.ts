/**
 * Interop: kicks and bans across servers, in both directions. The owner on
 * the room's home server kicks or bans a member from the other server; the
 * member's own server learns it (its /state and /sync), a banned member
 * cannot join again, and an unban lets it back.
 *
 * Spec: client-server-api "Banning users in a room" / kick / unban;
 * server-server-api "Transactions" (membership PDUs reach the kicked user's
 * server, which is in the room until the kick); authorization rules for
 * m.room.member (ban blocks join).
 */
import type { Json } from '../support/fixtures';
import { interopModes, DIRECTIONS, federatedRoom, joinVia, sides, useAtrium, interopPeers, usePeer, waitForMembership, waitForState, waitForSyncRoom } from '../support/interop';

const enc = encodeURIComponent;

describe.each(interopPeers())('kicks and bans across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    describe.each(DIRECTIONS)('room on %s, member from %s', (homeName, remoteName) => {
      const home = () => side[homeName];
      const remote = () => side[remoteName];

      it('a kick reaches the kicked user: its server shows leave with the reason, and it may join again', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        expect((await owner.api('POST', `/rooms/${enc(roomId)}/kick`, { user_id: guest.userId, reason: `kicked on ${homeName}` })).status).toBe(200);
        const left = await waitForSyncRoom(guest, roomId, 'leave');
        expect(left).toBeDefined();
        // The kicked user's server keeps the room's state up to the kick.
        const member = await waitForMembership(guest, roomId, guest.userId, 'leave');
        expect(member.reason).toBe(`kicked on ${homeName}`);
        expect((await joinVia(guest, roomId, [home().serverName()])).status).toBe(200);
        await waitForMembership(owner, roomId, guest.userId, 'join');
      });

      it(`a ban reaches the banned user's server, blocks its joins, and an unban lets it join again (${remoteName} member)`, async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        expect((await owner.api('POST', `/rooms/${enc(roomId)}/ban`, { user_id: guest.userId, reason: 'spam' })).status).toBe(200);
        // The banned user's own view: the room under leave with the ban at the end of its timeline
        // (Synapse lets a banned user read no room state, only a user who left; so this checks /sync,
        // which both peers serve).
        const left = await waitForSyncRoom(guest, roomId, 'leave');
        const timeline = (left.timeline?.events ?? []) as Json[];
        expect(timeline.find((e) => e.type === 'm.room.member' && e.state_key === guest.userId && e.content.membership === 'ban')).toMatchObject({ sender: owner.userId, content: { reason: 'spam' } });
        const again = await joinVia(guest, roomId, [home().serverName()]);
        expect(again.status).toBe(403);
        expect(again.json.errcode).toBe('M_FORBIDDEN');

        expect((await owner.api('POST', `/rooms/${enc(roomId)}/unban`, { user_id: guest.userId })).status).toBe(200);
        expect((await joinVia(guest, roomId, [home().serverName()])).status).toBe(200);
        await waitForMembership(owner, roomId, guest.userId, 'join');
      });

      it('a remote moderator bans a user of the home server: the home server applies it', async () => {
        const { roomId, owner, guest } = await federatedRoom(home(), remote());
        const victim = await home().user('victim');
        expect((await joinVia(victim, roomId, [home().serverName()])).status).toBe(200);
        const levels = await owner.api('GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`);
        await owner.api('PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...levels.json, users: { ...(levels.json.users as object), [guest.userId]: 50 } });
        await waitForMembership(guest, roomId, victim.userId, 'join');
        await waitForState(guest, roomId, 'm.room.power_levels', '', (c) => c.users?.[guest.userId] === 50);
        expect((await guest.api('POST', `/rooms/${enc(roomId)}/ban`, { user_id: victim.userId, reason: `by ${remoteName}` })).status).toBe(200);
        await waitForMembership(owner, roomId, victim.userId, 'ban');
        expect((await victim.api('POST', `/rooms/${enc(roomId)}/join`, {})).status).toBe(403);
      });
    });
  });
});
