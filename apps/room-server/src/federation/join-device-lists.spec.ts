/**
 * A local user's device list when they join a room (server-server-api
 * "Device Management": m.device_list_update EDUs "must be sent whenever ...
 * that user joins a room which contains servers which are not already
 * receiving updates for that user's device list"): the room's servers that
 * share no other room with the user get each of their devices once the join
 * is stored, through another server or locally. That also mends keys
 * uploaded while a join through another server was under way: the resident
 * server accepted the join at send_join and may have fetched the list
 * before, while the upload's own update went to no server, since the room
 * was not the user's yet (matrix-js-sdk uploads its keys right after its
 * first sync, often while joining).
 *
 * Real parts: a synthetic resident server over HTTPS (test CA, real Ed25519
 * keys) that holds the room and records the transactions it receives; the
 * real HttpFederationClient, StoredKeyRing, FederationMembership, RoomWriter,
 * FederationInput, E2eeService and federation-outbound's FederationSender
 * over SQLite and the in-process bus.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountStore } from '@atrium/accounts';
import { InProcessBus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import { E2eeService } from '@atrium/e2ee';
import type { HttpsTransport } from '@atrium/federation-client';
import { buildPdu, buildServerKeys, generateSigningKey, getRoomVersion, signJson, signPdu, toRoomEvent, type JsonObject, type Pdu } from '@atrium/matrix';
import { RoomStore } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { initTelemetry, type Telemetry } from '@atrium/telemetry';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { sendJson, startHttps, type RunningHttps } from '../../../../libs/federation-client/src/testing/https-server';
import { loopbackFederation } from '../../../../libs/federation-client/src/testing/loopback-federation';
import { FederationSender } from '../../../federation-outbound/src/federation-sender';
import { FederationMembership } from '../federation-membership';
import { RoomWriter } from '../room-writer';
import { FederationInput } from './federation-input';

const LOCAL = 'local.test';
const VERSION = getRoomVersion('11')!;
const alice = `@alice:${LOCAL}`;
const carol = `@carol:${LOCAL}`;
const DEVICE = 'ALICEDEV';

type Json = Record<string, unknown>;

async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('a local user\'s join sends their device list to the room\'s servers not yet receiving it', () => {
  let ca: TestCa;
  let remote: RunningHttps;
  let REMOTE: string;
  let bob: string;
  const remoteKey = generateSigningKey('r1');
  /** The rooms the synthetic resident server holds: their events in order. */
  let remoteRooms: Map<string, Pdu[]>;
  /** Run by the synthetic server on send_join before it answers (the client's upload landing mid-join). */
  let duringSendJoin: () => Promise<void>;
  /** The EDUs of every transaction the synthetic server received, and the PDU IDs. */
  let edus: Json[];
  let pduIds: string[];

  let telemetry: Telemetry;
  let dir: string;
  let store: DocumentStore;
  let bus: InProcessBus;
  let transport: HttpsTransport;
  let membership: FederationMembership;
  let writer: RoomWriter;
  let rooms: RoomStore;
  let sender: FederationSender;
  let e2ee: E2eeService;

  /** A PDU of the synthetic server's, signed by it. */
  function remotePdu(roomId: string, fields: { type: string; state_key: string; content: JsonObject }, prev: Pdu[], auth: Pdu[]): Pdu {
    const id = (p: Pdu) => toRoomEvent(p, VERSION).event_id;
    const depth = Math.max(0, ...prev.map((p) => p.depth)) + 1;
    const built = buildPdu({ room_id: roomId, sender: bob, ...fields, origin_server_ts: Date.now(), depth, prev_events: prev.map(id), auth_events: auth.map(id) }, VERSION);
    return signPdu(built, VERSION, REMOTE, remoteKey);
  }

  beforeAll(async () => {
    ca = createTestCa();
    telemetry = initTelemetry({ serviceName: 'room-server-spec', logLevel: 'silent' });
    remote = await startHttps(ca.issue(['127.0.0.1']), async (req, res) => {
      const path = new URL(req.url, 'https://x').pathname;
      if (path === '/_matrix/key/v2/server') {
        sendJson(res, 200, buildServerKeys({ serverName: REMOTE, signingKeys: [remoteKey], validUntilTs: Date.now() + 3600_000 }));
      } else if (path.startsWith('/_matrix/federation/v1/make_join/')) {
        const roomId = decodeURIComponent(path.split('/')[5]);
        const [create, , powerLevels, joinRules] = remoteRooms.get(roomId) ?? [];
        const id = (p: Pdu) => toRoomEvent(p, VERSION).event_id;
        sendJson(res, 200, {
          room_version: VERSION.id,
          event: {
            type: 'm.room.member',
            room_id: roomId,
            sender: alice,
            state_key: alice,
            content: { membership: 'join' },
            depth: joinRules.depth + 1,
            prev_events: [id(joinRules)],
            auth_events: [id(create), id(powerLevels), id(joinRules)],
            origin_server_ts: Date.now(),
          },
        });
      } else if (path.startsWith('/_matrix/federation/v2/send_join/') && req.method === 'PUT') {
        await duringSendJoin();
        const pdus = remoteRooms.get(decodeURIComponent(path.split('/')[5])) ?? [];
        sendJson(res, 200, { state: pdus, auth_chain: pdus, servers_in_room: [REMOTE], members_omitted: false });
      } else if (path.startsWith('/_matrix/federation/v1/send/') && req.method === 'PUT') {
        const txn = JSON.parse(req.body) as { pdus?: Pdu[]; edus?: Json[] };
        edus.push(...(txn.edus ?? []));
        pduIds.push(...(txn.pdus ?? []).map((p) => toRoomEvent(p, VERSION).event_id));
        sendJson(res, 200, { pdus: {} });
      } else {
        sendJson(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      }
    });
    REMOTE = `127.0.0.1:${remote.port}`;
    bob = `@bob:${REMOTE}`;
  });

  afterAll(async () => {
    await remote.close();
    await telemetry.shutdown();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  /** A public room of bob's on the synthetic server. */
  function remoteRoom(): string {
    const roomId = `!room${remoteRooms.size}x${Date.now()}:${REMOTE}`;
    const create = remotePdu(roomId, { type: 'm.room.create', state_key: '', content: { room_version: VERSION.id } }, [], []);
    const bobJoin = remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } }, [create], [create]);
    const powerLevels = remotePdu(roomId, { type: 'm.room.power_levels', state_key: '', content: { users: { [bob]: 100 } } }, [bobJoin], [create, bobJoin]);
    const joinRules = remotePdu(roomId, { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } }, [powerLevels], [create, bobJoin, powerLevels]);
    remoteRooms.set(roomId, [create, bobJoin, powerLevels, joinRules]);
    return roomId;
  }

  beforeEach(async () => {
    remoteRooms = new Map();
    duringSendJoin = async () => undefined;
    edus = [];
    pduIds = [];

    dir = mkdtempSync(join(tmpdir(), 'atrium-join-devices-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    rooms = await RoomStore.open(store);
    const accounts = await AccountStore.open(store);
    await accounts.createUser({ userId: alice, localpart: 'alice', passwordHash: null });
    await accounts.ensureDevice(alice, DEVICE, 'Alice laptop', null);
    bus = new InProcessBus();
    const localKey = generateSigningKey('l1');
    const federation = loopbackFederation({ caCertPath: ca.certPath, store, serverName: LOCAL, signingKey: localKey });
    ({ transport } = federation);
    const { client, keyRing } = federation;
    e2ee = await E2eeService.shared(store, bus, accounts, LOCAL);
    // As room-server.service.ts wires it.
    writer = new RoomWriter(rooms, bus, { serverName: LOCAL, signingKey: localKey, cache: new MemoryCache(), localJoin: (userId, roomId) => e2ee.deviceListsOnJoin(userId, roomId) });
    const input = new FederationInput(rooms, bus, { serverName: LOCAL, keyRing, client, serialise: (id, task) => writer.serialise(id, task) });
    membership = new FederationMembership(rooms, writer, bus, { serverName: LOCAL, signingKey: localKey, client, keyRing, input: () => input });
    sender = new FederationSender({ store, bus, cache: new MemoryCache(), telemetry, serverName: LOCAL, client, minBackoffMs: 100, maxBackoffMs: 800, pollMs: 50 });
    await sender.start();
  });

  afterEach(async () => {
    await sender.stop();
    transport.close();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** alice's device keys, self-signed as /keys/upload requires. */
  function aliceDeviceKeys(): JsonObject {
    const key = generateSigningKey(DEVICE);
    return signJson(
      {
        user_id: alice,
        device_id: DEVICE,
        algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
        keys: { [`ed25519:${DEVICE}`]: key.publicKeyBase64, [`curve25519:${DEVICE}`]: 'curve-alice' },
      },
      alice,
      key,
    );
  }

  const deviceListUpdates = (): Json[] => edus.filter((e) => e['edu_type'] === 'm.device_list_update');
  const joinRemote = (roomId: string) => membership.remoteMembership({ room_id: roomId, user_id: alice, membership: 'join', servers: [REMOTE] });

  it('keys uploaded after send_join reached the resident server, before the join is stored, are sent to it once it is', async () => {
    const keys = aliceDeviceKeys();
    duringSendJoin = async () => {
      await e2ee.upload(alice, DEVICE, { device_keys: keys });
      // The upload's own update is taken by the sender now, while no room of alice's has a remote member.
      await new Promise((r) => setTimeout(r, 300));
    };
    const { event_id: joinId } = await joinRemote(remoteRoom());

    const update = await eventually('an m.device_list_update for alice at the resident server', () => deviceListUpdates()[0]);
    const content = update['content'] as Json;
    expect(content).toMatchObject({ user_id: alice, device_id: DEVICE, keys, device_display_name: 'Alice laptop', prev_id: [] });
    expect(typeof content['stream_id']).toBe('number');
    // The join itself went out as well (the room-server log, not this change).
    await eventually('the join at the resident server', () => (pduIds.includes(joinId) ? true : undefined));
    expect(deviceListUpdates()).toHaveLength(1);
  }, 20_000);

  it('a join to a room of a server already receiving the updates (another shared room) sends none', async () => {
    await e2ee.upload(alice, DEVICE, { device_keys: aliceDeviceKeys() });
    await joinRemote(remoteRoom());
    await eventually('the first join\'s m.device_list_update', () => deviceListUpdates()[0]);
    const { event_id: secondJoin } = await joinRemote(remoteRoom());
    await eventually('the second join at the resident server', () => (pduIds.includes(secondJoin) ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(deviceListUpdates()).toHaveLength(1);
    expect(edus.filter((e) => e['edu_type'] === 'm.signing_key_update')).toEqual([]);
  }, 20_000);

  it('a local join to a room of this server with a member of another server sends that server the devices', async () => {
    const keys = aliceDeviceKeys();
    await e2ee.upload(alice, DEVICE, { device_keys: keys });
    const { room_id: roomId } = await writer.createRoom({
      sender: carol,
      room_version: VERSION.id,
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: carol, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: { [carol]: 100 } } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
      ],
    });
    // bob's join, stored as the federation input would store it.
    const bobJoin = toRoomEvent(remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } }, [], []), VERSION);
    await rooms.streams.withPosition('events', async (stream) => {
      await rooms.insertEvent({ event: bobJoin, stream });
      await rooms.setCurrentState(bobJoin, stream);
      await rooms.setMembership(bobJoin, stream);
    });
    expect(deviceListUpdates()).toEqual([]);

    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.member', state_key: alice, content: { membership: 'join' } });
    const update = await eventually('an m.device_list_update for alice at bob\'s server', () => deviceListUpdates()[0]);
    expect(update['content']).toMatchObject({ user_id: alice, device_id: DEVICE, keys });
    // A profile change (join over join) is not a new join.
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.member', state_key: alice, content: { membership: 'join', displayname: 'Alice' } });
    await new Promise((r) => setTimeout(r, 500));
    expect(deviceListUpdates()).toHaveLength(1);
  }, 20_000);
});
