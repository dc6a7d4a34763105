/**
 * Policy Servers (server-server-api "Policy Servers", v1.18) against real
 * parts: a synthetic remote server over HTTPS (test CA, real Ed25519 keys)
 * that is both a homeserver with a joined user and the room's Policy Server
 * (POST /_matrix/policy/v1/sign, signing with a key of its own that the
 * room's m.room.policy names); the real HttpFederationClient, StoredKeyRing,
 * RoomWriter and FederationInput over SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import type { HttpsTransport } from '@atrium/federation-client';
import { MatrixError } from '@atrium/http';
import {
  authEventKeys,
  buildPdu,
  buildServerKeys,
  generateSigningKey,
  getRoomVersion,
  POLICY_SERVER_KEY_ID,
  redactedForHashing,
  signJson,
  signPdu,
  toRoomEvent,
  type JsonObject,
  type Pdu,
} from '@atrium/matrix';
import { eventOf, RoomStore } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { sendJson, startHttps, type RunningHttps } from '../../../../libs/federation-client/src/testing/https-server';
import { loopbackFederation } from '../../../../libs/federation-client/src/testing/loopback-federation';
import { RoomWriter } from '../room-writer';
import { FederationInput } from './federation-input';
import { PolicyServers } from './policy-server';

const LOCAL = 'local.test';
const VERSION = getRoomVersion('11')!;
const alice = `@alice:${LOCAL}`;

describe('Policy Servers: local events signed before sending, received ones checked', () => {
  let ca: TestCa;
  let remote: RunningHttps;
  let REMOTE: string;
  let bob: string;
  const remoteKey = generateSigningKey('r1');
  /** The Policy Server's key: not its federation key (the spec's SHOULD). */
  const policyKey = generateSigningKey('policy_server');
  const wrongKey = generateSigningKey('policy_server');
  /** What the synthetic Policy Server does with the next sign requests. */
  let mode: 'sign' | 'refuse' | 'wrong-key' = 'sign';
  const signRequests: Pdu[] = [];

  let dir: string;
  let store: DocumentStore;
  let rooms: RoomStore;
  let bus: InProcessBus;
  let writer: RoomWriter;
  let input: FederationInput;
  let transport: HttpsTransport;

  const policySignature = (pdu: Pdu, key = policyKey): string =>
    signJson(redactedForHashing(pdu, VERSION), REMOTE, key, { strict: VERSION.strictCanonicalJson }).signatures[REMOTE][POLICY_SERVER_KEY_ID];

  beforeAll(async () => {
    ca = createTestCa();
    remote = await startHttps(ca.issue(['127.0.0.1']), (req, res) => {
      const path = new URL(req.url, 'https://x').pathname;
      if (path === '/_matrix/key/v2/server') {
        sendJson(res, 200, buildServerKeys({ serverName: REMOTE, signingKeys: [remoteKey], validUntilTs: Date.now() + 3600_000 }));
      } else if (path === '/_matrix/policy/v1/sign' && req.method === 'POST') {
        const pdu = JSON.parse(req.body) as Pdu;
        signRequests.push(pdu);
        if (mode === 'refuse') sendJson(res, 400, { errcode: 'M_FORBIDDEN', error: 'The message appears to contain possible spam' });
        else sendJson(res, 200, { [REMOTE]: { [POLICY_SERVER_KEY_ID]: policySignature(pdu, mode === 'sign' ? policyKey : wrongKey) } });
      } else {
        sendJson(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      }
    });
    REMOTE = `127.0.0.1:${remote.port}`;
    bob = `@bob:${REMOTE}`;
  });

  afterAll(async () => {
    await remote.close();
  });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-policy-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    rooms = await RoomStore.open(store);
    bus = new InProcessBus();
    const localKey = generateSigningKey('l1');
    const federation = loopbackFederation({ caCertPath: ca.certPath, store, serverName: LOCAL, signingKey: localKey });
    ({ transport } = federation);
    const { client, keyRing } = federation;
    const policyServers = new PolicyServers(rooms, { serverName: LOCAL, client });
    writer = new RoomWriter(rooms, bus, { serverName: LOCAL, signingKey: localKey, cache: new MemoryCache(), policyServers });
    input = new FederationInput(rooms, bus, { serverName: LOCAL, keyRing, client, serialise: (roomId, task) => writer.serialise(roomId, task), policyServers });
    mode = 'sign';
    signRequests.length = 0;
  });

  afterEach(async () => {
    transport.close();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A PDU of bob's, signed by the remote server (and by the Policy Server when asked), on top of the room's extremities. */
  async function remotePdu(roomId: string, fields: { type: string; state_key?: string; content: JsonObject }, withPolicySignature = false): Promise<{ pdu: Pdu; id: string }> {
    const prev = (await rooms.forwardExtremities(roomId)).map((x) => x.event_id);
    const keys = authEventKeys({ type: fields.type, state_key: fields.state_key, sender: bob, content: fields.content }, VERSION);
    const auth = [...(await rooms.currentStateEventsFor(roomId, keys)).values()].map((e) => e.event_id);
    const depths = await Promise.all(prev.map(async (id) => (await rooms.getEvent(id))?.depth ?? 0));
    const built = buildPdu({ room_id: roomId, sender: bob, ...fields, origin_server_ts: Date.now(), depth: Math.max(0, ...depths) + 1, prev_events: prev, auth_events: auth }, VERSION);
    let pdu = signPdu(built, VERSION, REMOTE, remoteKey);
    if (withPolicySignature) pdu = { ...pdu, signatures: { ...pdu.signatures, [REMOTE]: { ...pdu.signatures[REMOTE], [POLICY_SERVER_KEY_ID]: policySignature(pdu) } } };
    return { pdu, id: toRoomEvent(pdu, VERSION).event_id };
  }

  const receive = (roomId: string, pdu: Pdu) => input.receivePdus(REMOTE, roomId, [pdu as unknown as JsonObject]);

  async function timeline(roomId: string): Promise<string[]> {
    return (await rooms.roomEvents(roomId, { from: 0, to: await rooms.safeStreamPosition(), direction: 'forward' })).map((r) => r._id);
  }

  /** A public room of alice's that bob (of the Policy Server's homeserver) has joined; with `policy`, m.room.policy names REMOTE. */
  async function room(policy: JsonObject | null): Promise<string> {
    const { room_id: roomId } = await writer.createRoom({
      sender: alice,
      room_version: VERSION.id,
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: { [alice]: 100 }, state_default: 50, events_default: 0 } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
      ],
    });
    const join = await remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    expect(await receive(roomId, join.pdu)).toEqual({ [join.id]: {} });
    // m.room.policy itself is never sent to the Policy Server ("MUST NOT be called for" it).
    if (policy) await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.policy', state_key: '', content: policy });
    expect(signRequests).toEqual([]);
    return roomId;
  }

  const policyContent = (): JsonObject => ({ via: REMOTE, public_keys: { ed25519: policyKey.publicKeyBase64 } });

  it('has a local event signed by the Policy Server before it is stored, and stores the signature with it', async () => {
    const roomId = await room(policyContent());
    const sent = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body: 'hello' } });
    expect(signRequests).toHaveLength(1);
    // The PDU asked about is the event as sent over federation (no event_id in v11's wire form), signed by this server.
    expect(signRequests[0]).toMatchObject({ type: 'm.room.message', sender: alice, content: { body: 'hello' } });
    expect(signRequests[0]).not.toHaveProperty('event_id');
    expect(Object.keys(signRequests[0].signatures)).toEqual([LOCAL]);
    const stored = eventOf((await rooms.getEvent(sent.event_id))!);
    expect(Object.keys(stored.signatures[REMOTE])).toEqual([POLICY_SERVER_KEY_ID]);
    expect(stored.signatures[LOCAL]).toBeDefined();
    // State events and memberships too.
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.topic', state_key: '', content: { topic: 'checked' } });
    expect(signRequests.map((p) => p.type)).toEqual(['m.room.message', 'm.room.topic']);
  });

  it('refuses the send when the Policy Server refuses (its error verbatim) or signs with another key; nothing is stored', async () => {
    const roomId = await room(policyContent());
    const before = await timeline(roomId);
    mode = 'refuse';
    const refused = writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body: 'spam' }, txn: { device_id: 'D', scope: 'send', txn_id: 't1' } });
    await expect(refused).rejects.toThrow(MatrixError);
    await expect(refused).rejects.toMatchObject({ status: 400, errcode: 'M_FORBIDDEN', message: 'The message appears to contain possible spam' });
    mode = 'wrong-key';
    await expect(writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body: 'x' } })).rejects.toMatchObject({ status: 502 });
    expect(await timeline(roomId)).toEqual(before);
    // The refused transaction is free again: the same ID is judged anew once the Policy Server agrees.
    mode = 'sign';
    const retried = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body: 'spam' }, txn: { device_id: 'D', scope: 'send', txn_id: 't1' } });
    expect((await timeline(roomId)).at(-1)).toBe(retried.event_id);
  });

  it('accepts a received event with a valid Policy Server signature without asking; asks for one that has none; soft-fails what it will not sign', async () => {
    const roomId = await room(policyContent());
    const signed = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'pre-signed' } }, true);
    expect(await receive(roomId, signed.pdu)).toEqual({ [signed.id]: {} });
    expect(signRequests).toEqual([]);
    expect((await timeline(roomId)).at(-1)).toBe(signed.id);

    // No signature: asked for; given, the event enters the timeline with it.
    const unsigned = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'asked' } });
    expect(await receive(roomId, unsigned.pdu)).toEqual({ [unsigned.id]: {} });
    expect(signRequests).toHaveLength(1);
    expect((await timeline(roomId)).at(-1)).toBe(unsigned.id);
    expect(eventOf((await rooms.getEvent(unsigned.id))!).signatures[REMOTE][POLICY_SERVER_KEY_ID]).toBeDefined();

    // Refused: soft-failed (stored, not in the timeline).
    mode = 'refuse';
    const refused = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'spam' } });
    expect(await receive(roomId, refused.pdu)).toEqual({ [refused.id]: {} });
    expect(await timeline(roomId)).not.toContain(refused.id);
    expect(await rooms.getEvent(refused.id)).toMatchObject({ soft_failed: true });
    // A signature by a key other than the room's: asked again, still refused: soft-failed too.
    const forged = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'forged' } });
    const wrong = { ...forged.pdu, signatures: { ...forged.pdu.signatures, [REMOTE]: { ...forged.pdu.signatures[REMOTE], [POLICY_SERVER_KEY_ID]: policySignature(forged.pdu, wrongKey) } } };
    await receive(roomId, wrong);
    expect(await rooms.getEvent(forged.id)).toMatchObject({ soft_failed: true });
  });

  it('asks nobody when the room names no Policy Server, an invalid one, or one with no joined user', async () => {
    const policies: Array<JsonObject | null> = [null, { via: REMOTE }, { via: 'elsewhere.test', public_keys: { ed25519: policyKey.publicKeyBase64 } }];
    for (const policy of policies) {
      const roomId = await room(policy);
      await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { msgtype: 'm.text', body: 'free' } });
      const received = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'free too' } });
      expect(await receive(roomId, received.pdu)).toEqual({ [received.id]: {} });
      expect((await timeline(roomId)).at(-1)).toBe(received.id);
    }
    expect(signRequests).toEqual([]);
  });
});
