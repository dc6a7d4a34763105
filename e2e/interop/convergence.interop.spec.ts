/**
 * Interop: concurrent state changes made on both servers at once (a fork in
 * the room's DAG) converge: after the dust settles both servers report the
 * same current state, event for event; in both directions.
 *
 * Spec: server-server-api "Room State Resolution" (room versions 2+ use state
 * resolution v2, the same algorithm on both sides), "Checks performed on
 * receipt of a PDU"; client-server-api GET /rooms/{roomId}/state.
 */
import { interopModes, DIRECTIONS, federatedRoom, putState, sides, stateIds, useAtrium, interopPeers, usePeer, waitForState, type PeerUser, waitWithLog } from '../support/interop';

const enc = encodeURIComponent;
const ROUNDS = 3;

/** Waits until both users read the same current state; answers it. */
async function converged(a: PeerUser, b: PeerUser, roomId: string): Promise<Map<string, string>> {
  let last = '';
  try {
    return await waitWithLog(`the same /state on both servers for ${roomId}`, async () => {
      const [x, y] = await Promise.all([stateIds(a, roomId), stateIds(b, roomId)]);
      const diff = [...new Set([...x.keys(), ...y.keys()])].filter((k) => x.get(k) !== y.get(k));
      last = diff.map((k) => k.replace('\u0000', '/')).join(', ');
      return diff.length === 0 ? x : undefined;
    }, 45_000, 500);
  } catch (err) {
    throw new Error(`${(err as Error).message}; still different: ${last}`);
  }
}

describe.each(interopPeers())('concurrent state changes converge (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);

    describe.each(DIRECTIONS)('room on %s, second admin on %s', (homeName, remoteName) => {
      it(`${ROUNDS} rounds of simultaneous topic, name and per-user state changes end in the same /state on both servers`, async () => {
        const { roomId, owner, guest } = await federatedRoom(side[homeName], side[remoteName]);
        const levels = await owner.api('GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`);
        await putState(owner, roomId, 'm.room.power_levels', '', { ...levels.json, users: { ...(levels.json.users as object), [guest.userId]: 100 } });
        await waitForState(guest, roomId, 'm.room.power_levels', '', (c) => c.users?.[guest.userId] === 100);

        for (let round = 0; round < ROUNDS; round++) {
          await Promise.all([
            putState(owner, roomId, 'm.room.topic', '', { topic: `${homeName} topic ${round}` }),
            putState(guest, roomId, 'm.room.topic', '', { topic: `${remoteName} topic ${round}` }),
            putState(owner, roomId, 'm.room.name', '', { name: `${homeName} name ${round}` }),
            putState(guest, roomId, 'm.room.name', '', { name: `${remoteName} name ${round}` }),
            putState(owner, roomId, 'org.atrium.interop', owner.userId, { round }),
            putState(guest, roomId, 'org.atrium.interop', guest.userId, { round }),
          ]);
        }
        const state = await converged(owner, guest, roomId);
        // Both per-user keys survive (no conflict there); the contested ones hold one of the two last writes.
        expect(state.has(`org.atrium.interop\u0000${owner.userId}`)).toBe(true);
        expect(state.has(`org.atrium.interop\u0000${guest.userId}`)).toBe(true);
        const topic = await owner.api('GET', `/rooms/${enc(roomId)}/state/m.room.topic/`);
        expect([`${homeName} topic ${ROUNDS - 1}`, `${remoteName} topic ${ROUNDS - 1}`]).toContain(topic.json.topic);
        expect((await guest.api('GET', `/rooms/${enc(roomId)}/state/m.room.topic/`)).json.topic).toBe(topic.json.topic);
      });
    });
  });
});
