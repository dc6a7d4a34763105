/**
 * The handshake answers a resident server gives, against real parts
 * (SQLite storage, the in-process bus, the room writer); the transport and
 * key fetching are out of the picture because every event here is signed by
 * this server or refused before any signature check. The full handshakes
 * between two servers run in e2e/federation/membership.e2e.spec.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import { MatrixError } from '@atrium/http';
import { buildPdu, computeEventId, generateSigningKey, signPdu, toWirePdu, type JsonObject, type Pdu } from '@atrium/matrix';
import { RoomStore } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { FederationMembership } from './federation-membership';
import type { CreateRoomRequest } from './room-server.api';
import { RoomWriter } from './room-writer';

const SERVER = 'resident.test';
const REMOTE = 'remote.test';
const alice = `@alice:${SERVER}`;
const visitor = `@visitor:${REMOTE}`;
const key = generateSigningKey('r1');
const remoteKey = generateSigningKey('x1');

function createRequest(version: string, joinRule: JsonObject = { join_rule: 'public' }): CreateRoomRequest {
  return {
    sender: alice,
    room_version: version,
    creation_content: {},
    visibility: 'private',
    events: [
      { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
      { type: 'm.room.power_levels', state_key: '', content: { users: Number(version) >= 12 ? {} : { [alice]: 100 } } },
      { type: 'm.room.join_rules', state_key: '', content: joinRule },
      { type: 'm.room.name', state_key: '', content: { name: 'Resident' } },
    ],
  };
}

async function failure(promise: Promise<unknown>): Promise<MatrixError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof MatrixError) return err;
    throw err;
  }
  throw new Error('expected a MatrixError');
}

describe('FederationMembership (resident side)', () => {
  let dir: string;
  let store: DocumentStore;
  let rooms: RoomStore;
  let bus: InProcessBus;
  let writer: RoomWriter;
  let membership: FederationMembership;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-membership-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    rooms = await RoomStore.open(store);
    bus = new InProcessBus();
    writer = new RoomWriter(rooms, bus, { serverName: SERVER, signingKey: key, cache: new MemoryCache() });
    membership = new FederationMembership(rooms, writer, bus, { serverName: SERVER, signingKey: key, userExists: async (u) => u === alice });
  });

  afterEach(async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('make_join answers a template on the forward extremities that the joining server completes', async () => {
    const { room_id } = await writer.createRoom(createRequest('10'));
    const made = await membership.makeMembership({ room_id, user_id: visitor, membership: 'join', supported_versions: ['9', '10'] });
    expect(made.room_version).toBe('10');
    const extremities = (await rooms.forwardExtremities(room_id)).map((x) => x.event_id);
    expect(made.event).toMatchObject({ type: 'm.room.member', state_key: visitor, sender: visitor, room_id, content: { membership: 'join' }, prev_events: extremities });
    expect(made.event['event_id']).toBeUndefined();
    expect(made.event['signatures']).toBeUndefined();
    // auth events: create, power levels, join rules (no membership of the joiner yet).
    const state = await rooms.currentStateIds(room_id);
    const idOf = (type: string) => state.find((s) => s.type === type)?.event_id;
    expect([...(made.event['auth_events'] as string[])].sort()).toEqual([idOf('m.room.create'), idOf('m.room.power_levels'), idOf('m.room.join_rules')].sort());
  });

  it('make_join: M_INCOMPATIBLE_ROOM_VERSION with the room version when `ver` lacks it (default ["1"])', async () => {
    const { room_id } = await writer.createRoom(createRequest('10'));
    const err = await failure(membership.makeMembership({ room_id, user_id: visitor, membership: 'join' }));
    expect([err.status, err.errcode, err.extra]).toEqual([400, 'M_INCOMPATIBLE_ROOM_VERSION', { room_version: '10' }]);
    expect((await failure(membership.makeMembership({ room_id, user_id: visitor, membership: 'knock', supported_versions: ['11'] }))).errcode).toBe('M_INCOMPATIBLE_ROOM_VERSION');
    // make_leave has no `ver`: what refuses this one is the auth rules (the user is not in the room).
    expect((await failure(membership.makeMembership({ room_id, user_id: visitor, membership: 'leave' }))).errcode).toBe('M_FORBIDDEN');
  });

  it('make_join: 404 for an unknown room, 403 when the auth rules refuse (invite-only), knock refused before v7', async () => {
    expect((await failure(membership.makeMembership({ room_id: `!nope:${SERVER}`, user_id: visitor, membership: 'join', supported_versions: ['10'] }))).status).toBe(404);
    const { room_id } = await writer.createRoom(createRequest('10', { join_rule: 'invite' }));
    const err = await failure(membership.makeMembership({ room_id, user_id: visitor, membership: 'join', supported_versions: ['10'] }));
    expect([err.status, err.errcode]).toEqual([403, 'M_FORBIDDEN']);
    const old = await writer.createRoom(createRequest('6'));
    expect((await failure(membership.makeMembership({ room_id: old.room_id, user_id: visitor, membership: 'knock', supported_versions: ['6'] }))).status).toBe(403);
  });

  it('make_join in a restricted room: join_authorised_via_users_server for a member of the allowed room, 403 for others, 400 when this server cannot tell', async () => {
    const allowed = await writer.createRoom(createRequest('10'));
    const restricted = await writer.createRoom(createRequest('10', { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowed.room_id }] }));
    // A remote user's join, as if it had arrived: the membership record is what make_join reads.
    const joinEvent = signPdu(
      buildPdu({ room_id: allowed.room_id, sender: visitor, type: 'm.room.member', state_key: visitor, content: { membership: 'join' }, origin_server_ts: Date.now(), depth: 9, prev_events: [], auth_events: [] }, '10'),
      '10',
      REMOTE,
      remoteKey,
    );
    const other = `@other:${REMOTE}`;
    expect((await failure(membership.makeMembership({ room_id: restricted.room_id, user_id: other, membership: 'join', supported_versions: ['10'] }))).status).toBe(403);
    await rooms.setMembership({ ...joinEvent, event_id: '$visitor-join', room_id: allowed.room_id }, 1);
    const made = await membership.makeMembership({ room_id: restricted.room_id, user_id: visitor, membership: 'join', supported_versions: ['10'] });
    expect(made.event['content']).toEqual({ membership: 'join', join_authorised_via_users_server: alice });

    const unknownAllowed = await writer.createRoom(createRequest('10', { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: `!elsewhere:${REMOTE}` }] }));
    const err = await failure(membership.makeMembership({ room_id: unknownAllowed.room_id, user_id: visitor, membership: 'join', supported_versions: ['10'] }));
    expect([err.status, err.errcode]).toEqual([400, 'M_UNABLE_TO_AUTHORISE_JOIN']);
  });

  describe('invite v2', () => {
    function remoteInvite(roomId: string, target: string, sender = visitor): JsonObject {
      const pdu = buildPdu({ room_id: roomId, sender, type: 'm.room.member', state_key: target, content: { membership: 'invite' }, origin_server_ts: Date.now(), depth: 5, prev_events: ['$p'], auth_events: ['$a'] }, '10');
      return toWirePdu(signPdu(pdu, '10', REMOTE, remoteKey), '10') as unknown as JsonObject;
    }

    it.each([
      ['not a member event', (e: JsonObject) => ({ ...e, type: 'm.room.message' })],
      ['not an invite', (e: JsonObject) => ({ ...e, content: { membership: 'join' } })],
      ['a sender of another server', (e: JsonObject) => ({ ...e, sender: `@mallory:evil.test` })],
      ['an invitee of another server', (e: JsonObject) => ({ ...e, state_key: `@bob:${REMOTE}` })],
    ])('refuses %s with M_INVALID_PARAM', async (_what, change) => {
      const event = change(remoteInvite(`!room:${REMOTE}`, alice));
      const err = await failure(membership.receiveInvite({ origin: REMOTE, room_id: `!room:${REMOTE}`, event_id: '$x', room_version: '10', event }));
      expect([err.status, err.errcode]).toEqual([400, 'M_INVALID_PARAM']);
    });

    it('refuses an unsupported room version with M_INCOMPATIBLE_ROOM_VERSION and a signature it cannot check', async () => {
      const event = remoteInvite(`!room:${REMOTE}`, alice);
      const bad = await failure(membership.receiveInvite({ origin: REMOTE, room_id: `!room:${REMOTE}`, event_id: '$x', room_version: '99', event }));
      expect([bad.status, bad.errcode, bad.extra]).toEqual([400, 'M_INCOMPATIBLE_ROOM_VERSION', { room_version: '99' }]);
      // No key ring: the remote server's signature cannot be verified, so the invite is refused.
      const eventId = computeEventId(event as unknown as Pdu, '10');
      const unsigned = await failure(membership.receiveInvite({ origin: REMOTE, room_id: `!room:${REMOTE}`, event_id: eventId, room_version: '10', event }));
      expect(unsigned.errcode).toBe('M_INVALID_PARAM');
      expect(unsigned.message).toMatch(/signature/);
    });
  });
});
