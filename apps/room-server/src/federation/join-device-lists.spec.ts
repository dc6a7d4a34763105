/**
 * A local user's device list across their join through another server
 * (server-server-api "Device Management": "Servers must send
 * m.device_list_update EDUs to all the servers who share a room with a given
 * local user"). The resident server accepts the join at send_join, so its
 * users may fetch the joiner's devices from then on; keys uploaded before this
 * server has stored the join went nowhere (the room was not the user's yet),
 * and must reach the room's servers once it is. matrix-js-sdk uploads its
 * device keys right after its first sync, which is how a client joining its
 * first federated room meets this.
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

describe('a device list change made while a remote join is under way reaches the room', () => {
  let ca: TestCa;
  let remote: RunningHttps;
  let REMOTE: string;
  let bob: string;
  const remoteKey = generateSigningKey('r1');
  /** The room the synthetic resident server holds: its events in order, and its ID. */
  let roomId: string;
  let roomPdus: Pdu[];
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
  let sender: FederationSender;
  let e2ee: E2eeService;

  /** A PDU of the synthetic server's, signed by it. */
  function remotePdu(fields: { type: string; state_key: string; content: JsonObject }, prev: Pdu[], auth: Pdu[]): Pdu {
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
        const [create, , powerLevels, joinRules] = roomPdus;
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
        sendJson(res, 200, { state: roomPdus, auth_chain: roomPdus, servers_in_room: [REMOTE], members_omitted: false });
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

  beforeEach(async () => {
    roomId = `!room${Date.now()}:${REMOTE}`;
    const create = remotePdu({ type: 'm.room.create', state_key: '', content: { room_version: VERSION.id } }, [], []);
    const bobJoin = remotePdu({ type: 'm.room.member', state_key: bob, content: { membership: 'join' } }, [create], [create]);
    const powerLevels = remotePdu({ type: 'm.room.power_levels', state_key: '', content: { users: { [bob]: 100 } } }, [bobJoin], [create, bobJoin]);
    const joinRules = remotePdu({ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } }, [powerLevels], [create, bobJoin, powerLevels]);
    roomPdus = [create, bobJoin, powerLevels, joinRules];
    duringSendJoin = async () => undefined;
    edus = [];
    pduIds = [];

    dir = mkdtempSync(join(tmpdir(), 'atrium-join-devices-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    const rooms = await RoomStore.open(store);
    const accounts = await AccountStore.open(store);
    await accounts.createUser({ userId: alice, localpart: 'alice', passwordHash: null });
    await accounts.ensureDevice(alice, DEVICE, 'Alice laptop', null);
    bus = new InProcessBus();
    const localKey = generateSigningKey('l1');
    const federation = loopbackFederation({ caCertPath: ca.certPath, store, serverName: LOCAL, signingKey: localKey });
    ({ transport } = federation);
    const { client, keyRing } = federation;
    const writer = new RoomWriter(rooms, bus, { serverName: LOCAL, signingKey: localKey, cache: new MemoryCache() });
    const input = new FederationInput(rooms, bus, { serverName: LOCAL, keyRing, client, serialise: (id, task) => writer.serialise(id, task) });
    e2ee = await E2eeService.shared(store, bus, accounts, LOCAL);
    // As room-server.service.ts wires it.
    membership = new FederationMembership(rooms, writer, bus, {
      serverName: LOCAL,
      signingKey: localKey,
      client,
      keyRing,
      input: () => input,
      deviceLists: { mark: () => e2ee.deviceListMark(), afterJoin: (userId, id, mark) => e2ee.deviceListsAfterJoin(userId, id, mark) },
    });
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

  it('keys uploaded after send_join reached the resident server, before the join is stored, are sent to it once it is', async () => {
    const keys = aliceDeviceKeys();
    duringSendJoin = async () => {
      await e2ee.upload(alice, DEVICE, { device_keys: keys });
      // The upload's own update is taken by the sender now, while no room of alice's has a remote member.
      await new Promise((r) => setTimeout(r, 300));
    };
    const { event_id: joinId } = await membership.remoteMembership({ room_id: roomId, user_id: alice, membership: 'join', servers: [REMOTE] });

    const update = await eventually('an m.device_list_update for alice at the resident server', () => deviceListUpdates()[0]);
    const content = update['content'] as Json;
    expect(content).toMatchObject({ user_id: alice, device_id: DEVICE, keys, device_display_name: 'Alice laptop', prev_id: [] });
    expect(typeof content['stream_id']).toBe('number');
    // The join itself went out as well (the room-server log, not this change).
    await eventually('the join at the resident server', () => (pduIds.includes(joinId) ? true : undefined));
    expect(deviceListUpdates()).toHaveLength(1);
  }, 20_000);

  it('a join with no device list change meanwhile sends no device list update', async () => {
    await e2ee.upload(alice, DEVICE, { device_keys: aliceDeviceKeys() });
    const { event_id: joinId } = await membership.remoteMembership({ room_id: roomId, user_id: alice, membership: 'join', servers: [REMOTE] });
    await eventually('the join at the resident server', () => (pduIds.includes(joinId) ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(edus.filter((e) => e['edu_type'] === 'm.device_list_update' || e['edu_type'] === 'm.signing_key_update')).toEqual([]);
  }, 20_000);
});
