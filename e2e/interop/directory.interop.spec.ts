/**
 * Interop: profile and room alias lookups across servers, both ways, and a
 * join by a remote alias.
 *
 * Spec: server-server-api "Querying for information" (GET
 * /_matrix/federation/v1/query/profile, /query/directory); client-server-api
 * GET /profile/{userId}, GET /directory/room/{roomAlias}, POST /join/{alias}.
 */
import { interopModes, DIRECTIONS, createRoom, sides, useAtrium, interopPeers, usePeer, waitForMembership, FEDERATION_WAIT_MS, waitWithLog } from '../support/interop';
import { uniqueName } from '../support/clients';

const enc = encodeURIComponent;

describe.each(interopPeers())('profile and alias lookups across servers (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    describe.each(DIRECTIONS)('%s user looked up from %s', (ownerName, askerName) => {
      it('profile: displayname and avatar_url of the remote user, and 404 for an unknown one', async () => {
        const owner = await side[ownerName].user('profiled');
        const asker = await side[askerName].user('asker');
        expect((await owner.api('PUT', `/profile/${enc(owner.userId)}/displayname`, { displayname: `Someone on ${ownerName}` })).status).toBe(200);
        expect((await owner.api('PUT', `/profile/${enc(owner.userId)}/avatar_url`, { avatar_url: 'mxc://example.org/avatar' })).status).toBe(200);
        const profile = await waitWithLog(`${owner.userId}'s profile from ${askerName}`, async () => {
          const res = await asker.api('GET', `/profile/${enc(owner.userId)}`);
          return res.status === 200 ? res.json : undefined;
        }, FEDERATION_WAIT_MS, 500);
        expect(profile).toMatchObject({ displayname: `Someone on ${ownerName}`, avatar_url: 'mxc://example.org/avatar' });
        const one = await asker.api('GET', `/profile/${enc(owner.userId)}/displayname`);
        expect(one).toMatchObject({ status: 200, json: { displayname: `Someone on ${ownerName}` } });

        const unknown = await asker.api('GET', `/profile/${enc(`@${uniqueName('nobody')}:${side[ownerName].serverName()}`)}`);
        expect(unknown.status).toBe(404);
        expect(unknown.json.errcode).toBe('M_NOT_FOUND');
      });

      it('alias: the remote alias resolves to the room ID with the owner server listed, and the asker joins by it', async () => {
        const owner = await side[ownerName].user('aliaser');
        const asker = await side[askerName].user('asker');
        const localpart = uniqueName('interop');
        const roomId = await createRoom(owner, { preset: 'public_chat', room_alias_name: localpart });
        const alias = `#${localpart}:${side[ownerName].serverName()}`;
        const resolved = await asker.api('GET', `/directory/room/${enc(alias)}`);
        expect(resolved).toMatchObject({ status: 200, json: { room_id: roomId } });
        expect(resolved.json.servers).toContain(side[ownerName].serverName());

        const missing = await asker.api('GET', `/directory/room/${enc(`#${uniqueName('none')}:${side[ownerName].serverName()}`)}`);
        expect(missing.status).toBe(404);
        expect(missing.json.errcode).toBe('M_NOT_FOUND');

        const joined = await asker.api('POST', `/join/${enc(alias)}`, {});
        expect(joined).toMatchObject({ status: 200, json: { room_id: roomId } });
        await waitForMembership(owner, roomId, asker.userId, 'join');
      });
    });
  });
});
