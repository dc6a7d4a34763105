/**
 * FederationInput against real parts: a synthetic remote server with a real
 * Ed25519 key signing real PDUs, serving its keys and the federation
 * endpoints the input calls (/get_missing_events, /state_ids, /event,
 * /event_auth) over HTTPS on 127.0.0.1 with a test-CA certificate; the real
 * StoredKeyRing and HttpFederationClient fetch from it. SQLite storage, the
 * in-process bus, the real RoomWriter for local events.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import type { HttpsTransport } from '@atrium/federation-client';
import { sendJson, startHttps, type RunningHttps } from '../../../../libs/federation-client/src/testing/https-server';
import { loopbackFederation } from '../../../../libs/federation-client/src/testing/loopback-federation';
import {
  authEventKeys,
  buildPdu,
  buildServerKeys,
  eventReference,
  generateSigningKey,
  getRoomVersion,
  prevEventIds,
  signPdu,
  stateKey,
  toRoomEvent,
  type JsonObject,
  type Pdu,
  type SigningKey,
} from '@atrium/matrix';
import { eventOf, NO_STREAM, RoomStore, SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { RoomWriter } from '../room-writer';
import { FederationInput } from './federation-input';

const LOCAL = 'local.test';
const VERSION = getRoomVersion('10')!;
const alice = `@alice:${LOCAL}`;

describe('FederationInput (receipt of PDUs from a synthetic remote server over HTTPS)', () => {
  let ca: TestCa;
  let remoteServer: RunningHttps;
  let REMOTE: string;
  let bob: string;
  let carol: string;
  const remoteKey: SigningKey = generateSigningKey('r1');
  const forgedKey: SigningKey = generateSigningKey('r1');
  const localKey = generateSigningKey('l1');
  /** The remote server's events by ID (wire form): what its endpoints serve. */
  const remoteEvents = new Map<string, Pdu>();
  /** /state_ids answers by event ID (set by a test). */
  const stateIdsAt = new Map<string, { pdu_ids: string[]; auth_chain_ids: string[] }>();
  /** Latest event IDs for which /get_missing_events answers nothing (to force a gap). */
  const noMissingFor = new Set<string>();

  let dir: string;
  let store: DocumentStore;
  let rooms: RoomStore;
  let bus: InProcessBus;
  let writer: RoomWriter;
  let input: FederationInput;
  let transport: HttpsTransport;
  let wakes: SyncWake[];

  beforeAll(async () => {
    ca = createTestCa();
    remoteServer = await startHttps(ca.issue(['127.0.0.1']), (req, res) => {
      const url = new URL(req.url, 'https://x');
      const path = decodeURIComponent(url.pathname);
      if (path === '/_matrix/key/v2/server') {
        sendJson(res, 200, buildServerKeys({ serverName: REMOTE, signingKeys: [remoteKey], validUntilTs: Date.now() + 3600_000 }));
      } else if (path.startsWith('/_matrix/federation/v1/get_missing_events/')) {
        // Walk back from latest_events through prev_events until earliest_events (server-server backfill.yaml).
        const body = JSON.parse(req.body) as { earliest_events: string[]; latest_events: string[]; limit?: number };
        const stop = new Set(body.earliest_events);
        const found = new Map<string, Pdu>();
        const queue = body.latest_events.filter((id) => !noMissingFor.has(id)).flatMap((id) => (remoteEvents.get(id) ? prevEventIds(remoteEvents.get(id)!) : []));
        while (queue.length > 0 && found.size < (body.limit ?? 10)) {
          const id = queue.shift()!;
          const e = remoteEvents.get(id);
          if (!e || stop.has(id) || found.has(id)) continue;
          found.set(id, e);
          queue.push(...prevEventIds(e));
        }
        sendJson(res, 200, { events: [...found.values()].sort((a, b) => a.depth - b.depth) });
      } else if (path.startsWith('/_matrix/federation/v1/state_ids/')) {
        const answer = stateIdsAt.get(url.searchParams.get('event_id') ?? '');
        if (answer) sendJson(res, 200, answer);
        else sendJson(res, 404, { errcode: 'M_NOT_FOUND', error: 'unknown event' });
      } else if (path.startsWith('/_matrix/federation/v1/event/')) {
        const e = remoteEvents.get(path.slice('/_matrix/federation/v1/event/'.length));
        if (e) sendJson(res, 200, { origin: REMOTE, origin_server_ts: Date.now(), pdus: [e] });
        else sendJson(res, 404, { errcode: 'M_NOT_FOUND', error: 'unknown event' });
      } else if (path.startsWith('/_matrix/federation/v1/event_auth/')) {
        // The auth chain of the event, from what this server has (its own events).
        const eventId = path.split('/').pop() as string;
        const chain = new Map<string, Pdu>();
        const queue = [...((remoteEvents.get(eventId)?.auth_events as string[] | undefined) ?? [])];
        while (queue.length > 0) {
          const id = queue.shift() as string;
          const e = remoteEvents.get(id);
          if (!e || chain.has(id)) continue;
          chain.set(id, e);
          queue.push(...(e.auth_events as string[]));
        }
        sendJson(res, 200, { auth_chain: [...chain.values()] });
      } else {
        sendJson(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      }
    });
    REMOTE = `127.0.0.1:${remoteServer.port}`;
    bob = `@bob:${REMOTE}`;
    carol = `@carol:${REMOTE}`;
  });

  afterAll(async () => {
    await remoteServer.close();
  });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-fedin-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    rooms = await RoomStore.open(store);
    bus = new InProcessBus();
    wakes = [];
    await bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (m) => void wakes.push(m.data));
    writer = new RoomWriter(rooms, bus, { serverName: LOCAL, signingKey: localKey, cache: new MemoryCache() });
    const federation = loopbackFederation({ caCertPath: ca.certPath, store, serverName: LOCAL, signingKey: localKey });
    ({ transport } = federation);
    const { client, keyRing } = federation;
    input = new FederationInput(rooms, bus, { serverName: LOCAL, keyRing, client, serialise: (roomId, task) => writer.serialise(roomId, task) });
    remoteEvents.clear();
    stateIdsAt.clear();
    noMissingFor.clear();
    remoteServer.requests.length = 0;
  });

  afterEach(async () => {
    transport.close();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function createRoom(): Promise<string> {
    const { room_id } = await writer.createRoom({
      sender: alice,
      room_version: '10',
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: { [alice]: 100 }, redact: 50, state_default: 50, events_default: 0 } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
        { type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'shared' } },
      ],
    });
    return room_id;
  }

  /** A PDU from the remote server: prev_events default to our forward extremities, auth_events to the selection over our current state. */
  async function remotePdu(
    roomId: string,
    fields: { sender?: string; type: string; state_key?: string; content: JsonObject; prev?: string[]; auth?: string[]; ts?: number; redacts?: string },
    key: SigningKey = remoteKey,
  ): Promise<{ pdu: Pdu; id: string }> {
    const sender = fields.sender ?? bob;
    const prev = fields.prev ?? (await rooms.forwardExtremities(roomId)).map((x) => x.event_id);
    let auth = fields.auth;
    if (!auth) {
      const keys = authEventKeys({ type: fields.type, state_key: fields.state_key, sender, content: fields.content }, VERSION);
      const state = await rooms.currentStateEventsFor(roomId, keys);
      auth = [...state.values()].map((e) => e.event_id);
    }
    const depths = await Promise.all(prev.map(async (id) => (await rooms.getEvent(id))?.depth ?? remoteEvents.get(id)?.depth ?? 0));
    const built = buildPdu(
      { room_id: roomId, sender, type: fields.type, state_key: fields.state_key, content: fields.content, redacts: fields.redacts, origin_server_ts: fields.ts ?? Date.now(), depth: Math.max(0, ...depths) + 1, prev_events: prev, auth_events: auth },
      VERSION,
    );
    const pdu = signPdu(built, VERSION, REMOTE, key);
    const id = toRoomEvent(pdu, VERSION).event_id;
    remoteEvents.set(id, pdu);
    return { pdu, id };
  }

  const send = (roomId: string, ...pdus: Pdu[]) => input.receivePdus(REMOTE, roomId, pdus as unknown as JsonObject[]);

  async function timeline(roomId: string): Promise<string[]> {
    return (await rooms.roomEvents(roomId, { from: 0, to: await rooms.safeStreamPosition(), direction: 'forward' })).map((r) => r._id);
  }

  async function joinBob(roomId: string): Promise<string> {
    const join = await remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    expect(await send(roomId, join.pdu)).toEqual({ [join.id]: {} });
    return join.id;
  }

  it('accepts a remote join and message: timeline, membership, current state, state groups, sync wake', async () => {
    const roomId = await createRoom();
    const joinId = await joinBob(roomId);
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'hello from afar' } });
    const positionBefore = await rooms.safeStreamPosition();
    expect(await send(roomId, msg.pdu)).toEqual({ [msg.id]: {} });
    // The bus delivers notifications asynchronously: wait (bounded) for this one.
    for (let i = 0; i < 200 && !wakes.some((w) => w.position > positionBefore); i++) await new Promise((resolve) => setTimeout(resolve, 10));

    expect((await timeline(roomId)).slice(-2)).toEqual([joinId, msg.id]);
    expect(await rooms.getMembership(roomId, bob)).toMatchObject({ membership: 'join', event_id: joinId });
    expect((await rooms.currentStateEvent(roomId, 'm.room.member', bob))!._id).toBe(joinId);
    expect((await rooms.stateIdsAfter(msg.id))!.get(stateKey('m.room.member', bob))).toBe(joinId);
    expect((await rooms.stateIdsBefore(joinId))!.has(stateKey('m.room.member', bob))).toBe(false);
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id)).toEqual([msg.id]);
    expect(wakes.filter((w) => w.position > positionBefore)).toEqual([{ stream: 'events', position: (await rooms.getEvent(msg.id))!.stream, room_id: roomId }]);
    // The stored event is the PDU as received (minus unsigned), with its event ID.
    expect(eventOf((await rooms.getEvent(msg.id))!).content['body']).toBe('hello from afar');
    // The remote's key was fetched over HTTPS once.
    expect(remoteServer.requests.filter((r) => r.url.startsWith('/_matrix/key/v2/server'))).toHaveLength(1);
    // A local event after the remote one names it as its prev event and sees the remote member.
    const local = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'hi bob' } });
    expect(prevEventIds(eventOf((await rooms.getEvent(local.event_id))!))).toEqual([msg.id]);
  });

  it('drops a PDU whose signature does not verify (dropped: not stored, error in the result)', async () => {
    const roomId = await createRoom();
    const forged = await remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } }, forgedKey);
    const result = await send(roomId, forged.pdu);
    expect(result[forged.id].error).toMatch(/signature/);
    expect(await rooms.getEvent(forged.id)).toBeNull();
    // Unsigned by the sender's server at all.
    const unsigned = await remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    const stripped = { ...unsigned.pdu, signatures: {} };
    expect((await send(roomId, stripped))[unsigned.id].error).toMatch(/signature/);
    expect(await rooms.getEvent(unsigned.id)).toBeNull();
  });

  it('drops a PDU that is not a valid event of the room version', async () => {
    const roomId = await createRoom();
    const bad = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'x' } });
    const result = await send(roomId, { ...bad.pdu, depth: -3 } as Pdu);
    expect(Object.values(result)).toEqual([]);
    expect(await rooms.getEvent(bad.id)).toBeNull();
    // Junk beside a good PDU drops the junk only.
    await joinBob(roomId);
    const good = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'fine' } });
    const junk = [42, null, 'x', [], { type: 'm.room.message' }, { ...good.pdu, signatures: { [REMOTE]: 'nope' } }] as unknown as JsonObject[];
    expect(await input.receivePdus(REMOTE, roomId, [...junk, good.pdu as unknown as JsonObject])).toEqual({ [good.id]: {} });
  });

  it('redacts an event whose content hash does not match and keeps going', async () => {
    const roomId = await createRoom();
    await joinBob(roomId);
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'original' } });
    // Content changed after signing: the signature (over the redacted form) still verifies, the hash does not.
    const tampered = { ...msg.pdu, content: { msgtype: 'm.text', body: 'tampered' } } as Pdu;
    const next = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'after' }, prev: [msg.id] });
    expect(await send(roomId, tampered, next.pdu)).toEqual({ [msg.id]: {}, [next.id]: {} });
    const stored = eventOf((await rooms.getEvent(msg.id))!);
    expect(stored.content).toEqual({});
    expect((await timeline(roomId)).slice(-2)).toEqual([msg.id, next.id]);
  });

  it('rejects an event that fails the auth rules (not in the timeline, stored as rejected, error in the result)', async () => {
    const roomId = await createRoom();
    // carol never joined: "If the sender's current membership state is not join, reject."
    const msg = await remotePdu(roomId, { sender: carol, type: 'm.room.message', content: { body: 'let me in' } });
    const result = await send(roomId, msg.pdu);
    expect(result[msg.id].error).toMatch(/^rejected/);
    expect(await rooms.getEvent(msg.id)).toMatchObject({ stream: NO_STREAM, rejected: expect.any(String) });
    expect(await timeline(roomId)).not.toContain(msg.id);
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id)).not.toContain(msg.id);
    // Sending it again answers the same, without storing anything new.
    expect((await send(roomId, msg.pdu))[msg.id].error).toMatch(/^rejected/);
    // An event naming the rejected one as an auth event is rejected too (auth_events rule 3).
    const child = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'x' }, auth: [...(msg.pdu.auth_events as string[]), msg.id] });
    expect((await send(roomId, child.pdu))[child.id].error).toMatch(/rejected/);
  });

  it('rejects an event that passes against its auth events but not against the state before it (step 5)', async () => {
    const roomId = await createRoom();
    await joinBob(roomId);
    const auth = (await remotePdu(roomId, { type: 'm.room.message', content: {} })).pdu.auth_events as string[];
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.member', state_key: bob, content: { membership: 'ban' } });
    // After the ban in the DAG, but naming bob's old join as its auth event.
    const after = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'still here' }, auth });
    const result = await send(roomId, after.pdu);
    expect(result[after.id].error).toMatch(/state before the event/);
    expect(await rooms.getEvent(after.id)).toMatchObject({ rejected: expect.stringMatching(/state before/), stream: NO_STREAM });
  });

  it('soft-fails an event that passes at its place in the DAG but not against the current state', async () => {
    const roomId = await createRoom();
    const joinId = await joinBob(roomId);
    const before = (await rooms.forwardExtremities(roomId)).map((x) => x.event_id);
    const auth = (await remotePdu(roomId, { type: 'm.room.message', content: {} })).pdu.auth_events as string[];
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.member', state_key: bob, content: { membership: 'ban' } });
    // Bob's server sends a message that references the DAG before the ban.
    const evade = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'ban evasion' }, prev: before, auth });
    expect(auth).toContain(joinId);
    expect(await send(roomId, evade.pdu)).toEqual({ [evade.id]: {} });
    expect(await rooms.getEvent(evade.id)).toMatchObject({ soft_failed: true, stream: NO_STREAM, rejected: null });
    expect(await timeline(roomId)).not.toContain(evade.id);
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id)).not.toContain(evade.id);
    expect(await rooms.getMembership(roomId, bob)).toMatchObject({ membership: 'ban' });
  });

  it('resolves forks with state resolution (v2: the later topic wins whatever the arrival order)', async () => {
    const roomId = await createRoom();
    const joinId = await joinBob(roomId);
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.power_levels', state_key: '', content: { users: { [alice]: 100, [bob]: 100 }, redact: 50, state_default: 50, events_default: 0 } });
    const base = (await rooms.forwardExtremities(roomId)).map((x) => x.event_id);
    const now = Date.now();
    const early = await remotePdu(roomId, { type: 'm.room.topic', state_key: '', content: { topic: 'early' }, prev: base, ts: now - 10_000 });
    const late = await remotePdu(roomId, { type: 'm.room.topic', state_key: '', content: { topic: 'late' }, prev: base, ts: now - 5_000 });
    // The later one arrives first: after the second, the current state is the resolution, not the last arrival.
    expect(await send(roomId, late.pdu)).toEqual({ [late.id]: {} });
    expect(await send(roomId, early.pdu)).toEqual({ [early.id]: {} });
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id).sort()).toEqual([early.id, late.id].sort());
    expect((await rooms.currentStateEvent(roomId, 'm.room.topic', ''))!._id).toBe(late.id);
    // A merge event: the state before it is the resolution of both branches.
    const merge = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'merged' }, prev: [early.id, late.id] });
    expect(await send(roomId, merge.pdu)).toEqual({ [merge.id]: {} });
    const beforeMerge = (await rooms.stateIdsBefore(merge.id))!;
    expect(beforeMerge.get(stateKey('m.room.topic', ''))).toBe(late.id);
    expect(beforeMerge.get(stateKey('m.room.member', bob))).toBe(joinId);
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id)).toEqual([merge.id]);
    expect((await rooms.currentStateEvent(roomId, 'm.room.topic', ''))!._id).toBe(late.id);
  });

  it('fetches missing prev events through /get_missing_events from the origin', async () => {
    const roomId = await createRoom();
    await joinBob(roomId);
    const a = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'a' } });
    const b = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'b' }, prev: [a.id] });
    const c = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'c' }, prev: [b.id] });
    expect(await send(roomId, c.pdu)).toEqual({ [c.id]: {} });
    expect((await timeline(roomId)).slice(-3)).toEqual([a.id, b.id, c.id]);
    // A chain listed newest first in one transaction is applied parents first, without fetching.
    const requestsBefore = remoteServer.requests.length;
    const x = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'x' } });
    const y = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'y' }, prev: [x.id] });
    expect(await send(roomId, y.pdu, x.pdu)).toEqual({ [x.id]: {}, [y.id]: {} });
    expect(remoteServer.requests.length).toBe(requestsBefore);
    expect((await timeline(roomId)).slice(-2)).toEqual([x.id, y.id]);
    const asked = remoteServer.requests.filter((r) => r.url.startsWith('/_matrix/federation/v1/get_missing_events/'));
    expect(asked.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(asked[0].body)).toMatchObject({ latest_events: [c.id] });
    expect((await rooms.forwardExtremities(roomId)).map((e) => e.event_id)).toEqual([y.id]);
  });

  it('fetches auth events it does not have through /event_auth and stores them as outliers', async () => {
    const roomId = await createRoom();
    const joinId = await joinBob(roomId);
    const extremity = (await rooms.forwardExtremities(roomId))[0].event_id;
    // bob's displayname change, on a branch this server never received.
    const rename = await remotePdu(roomId, { type: 'm.room.member', state_key: bob, content: { membership: 'join', displayname: 'Bob' }, prev: [joinId] });
    const messageAuth = (await remotePdu(roomId, { type: 'm.room.message', content: {} })).pdu.auth_events as string[];
    const auth = [...messageAuth.filter((id) => id !== joinId), rename.id];
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'renamed' }, prev: [extremity], auth });
    expect(await send(roomId, msg.pdu)).toEqual({ [msg.id]: {} });
    expect(remoteServer.requests.some((r) => r.url.startsWith('/_matrix/federation/v1/event_auth/'))).toBe(true);
    expect(await rooms.getEvent(rename.id)).toMatchObject({ outlier: true, stream: NO_STREAM, rejected: null });
    expect(await timeline(roomId)).toContain(msg.id);
    expect(await timeline(roomId)).not.toContain(rename.id);
  });

  it('fills a gap /get_missing_events cannot close with /state_ids and /event (the missing event becomes an outlier)', async () => {
    const roomId = await createRoom();
    await joinBob(roomId);
    const state = (await rooms.currentStateIds(roomId)).map((s) => s.event_id);
    const chain = (await rooms.authChain(state)).map((r) => r._id);
    const p = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'p' } });
    const d = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'd' }, prev: [p.id] });
    noMissingFor.add(d.id);
    stateIdsAt.set(p.id, { pdu_ids: state, auth_chain_ids: chain });
    expect(await send(roomId, d.pdu)).toEqual({ [d.id]: {} });
    expect(remoteServer.requests.some((r) => r.url.startsWith(`/_matrix/federation/v1/state_ids/`) && r.url.includes(encodeURIComponent(p.id)))).toBe(true);
    expect(remoteServer.requests.some((r) => r.url === `/_matrix/federation/v1/event/${encodeURIComponent(p.id)}`)).toBe(true);
    expect(await rooms.getEvent(p.id)).toMatchObject({ outlier: true, stream: NO_STREAM });
    expect(await timeline(roomId)).toContain(d.id);
    expect(await timeline(roomId)).not.toContain(p.id);
    expect((await rooms.stateIdsBefore(d.id))!.get(stateKey('m.room.member', bob))).toBeDefined();
  });

  it("applies a remote redaction of the sender's own event, and not of another server's user's event", async () => {
    const roomId = await createRoom();
    await joinBob(roomId);
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'oops' } });
    const local = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'mine' } });
    const redactOwn = await remotePdu(roomId, { type: 'm.room.redaction', content: {}, redacts: msg.id });
    const redactAlice = await remotePdu(roomId, { type: 'm.room.redaction', content: {}, redacts: local.event_id });
    expect(await send(roomId, msg.pdu, redactOwn.pdu, redactAlice.pdu)).toEqual({ [msg.id]: {}, [redactOwn.id]: {}, [redactAlice.id]: {} });
    expect(await rooms.getEvent(msg.id)).toMatchObject({ redacted: true, redacted_by: redactOwn.id });
    expect(eventOf((await rooms.getEvent(msg.id))!).content).toEqual({});
    // v3+: bob (power 0, another server than alice) may not redact alice's event: stored, not applied.
    expect(await rooms.getEvent(local.event_id)).toMatchObject({ redacted: false });
    // A redaction that arrives before its target: applied when the target arrives.
    const later = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'regret' } });
    const early = await remotePdu(roomId, { type: 'm.room.redaction', content: {}, redacts: later.id, prev: [redactAlice.id] });
    expect(await send(roomId, early.pdu)).toEqual({ [early.id]: {} });
    expect(await send(roomId, later.pdu)).toEqual({ [later.id]: {} });
    expect(await rooms.getEvent(later.id)).toMatchObject({ redacted: true, redacted_by: early.id });
  });

  it('answers a repeated PDU with the stored result and stores nothing twice', async () => {
    const roomId = await createRoom();
    const joinId = await joinBob(roomId);
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'once' } });
    expect(await send(roomId, msg.pdu)).toEqual({ [msg.id]: {} });
    const length = (await timeline(roomId)).length;
    expect(await send(roomId, msg.pdu, msg.pdu)).toEqual({ [msg.id]: {} });
    expect((await send(roomId, remoteEvents.get(joinId)!))[joinId]).toEqual({});
    expect((await timeline(roomId)).length).toBe(length);
  });

  it('refuses every PDU from an origin the room server ACL denies', async () => {
    const roomId = await createRoom();
    await joinBob(roomId);
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.server_acl', state_key: '', content: { allow: ['*'], deny: ['127.0.0.1'] } });
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'denied' } });
    expect((await send(roomId, msg.pdu))[msg.id].error).toMatch(/server ACL/);
    expect(await rooms.getEvent(msg.id)).toBeNull();
  });

  it('accepts PDUs of room version 2 (event IDs carried, [id, {sha256}] references, signed by the event ID server too)', async () => {
    const v2 = getRoomVersion('2')!;
    const { room_id: roomId } = await writer.createRoom({
      sender: alice,
      room_version: '2',
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: { [alice]: 100 } } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
      ],
    });
    const refs = async (ids: string[]) => (await rooms.getEvents(ids)).map((r) => eventReference(eventOf(r), v2));
    const build = async (fields: { type: string; state_key?: string; content: JsonObject; eventId: string }, prev: string[]) => {
      const keys = authEventKeys({ type: fields.type, state_key: fields.state_key, sender: bob, content: fields.content }, v2);
      const auth = [...(await rooms.currentStateEventsFor(roomId, keys)).values()].map((e) => e.event_id);
      const depth = Math.max(...(await rooms.getEvents(prev)).map((r) => r.depth)) + 1;
      const built = buildPdu({ event_id: fields.eventId, room_id: roomId, sender: bob, type: fields.type, state_key: fields.state_key, content: fields.content, origin_server_ts: Date.now(), depth, prev_events: await refs(prev), auth_events: await refs(auth) }, v2);
      return signPdu(built, v2, REMOTE, remoteKey);
    };
    const extremities = (await rooms.forwardExtremities(roomId)).map((x) => x.event_id);
    const join = await build({ type: 'm.room.member', state_key: bob, content: { membership: 'join' }, eventId: `$join2:${REMOTE}` }, extremities);
    expect(await send(roomId, join)).toEqual({ [`$join2:${REMOTE}`]: {} });
    const msg = await build({ type: 'm.room.message', content: { body: 'v2' }, eventId: `$msg2:${REMOTE}` }, [`$join2:${REMOTE}`]);
    expect(await send(roomId, msg)).toEqual({ [`$msg2:${REMOTE}`]: {} });
    // An event ID naming another server needs that server's signature too: it has none here
    // (and its keys cannot be fetched: nothing listens on port 1).
    const foreign = await build({ type: 'm.room.message', content: { body: 'x' }, eventId: '$forged:127.0.0.1:1' }, [`$msg2:${REMOTE}`]);
    expect((await send(roomId, foreign))['$forged:127.0.0.1:1'].error).toMatch(/signature/);
    expect((await timeline(roomId)).slice(-2)).toEqual([`$join2:${REMOTE}`, `$msg2:${REMOTE}`]);
  });

  it('takes the withdrawal of a pending invite for a room it is not in (out-of-room leave of a local user)', async () => {
    const roomId = `!remote${Date.now()}:${REMOTE}`;
    const dave = `@dave:${LOCAL}`;
    // The invite as the handshake stores it: outside any room, with the stripped state (room version 10).
    const invite = await remotePdu(roomId, { type: 'm.room.member', state_key: dave, content: { membership: 'invite' }, prev: ['$somewhere'], auth: ['$create'] });
    const inviteEvent = toRoomEvent(invite.pdu, VERSION);
    const position = await rooms.streams.withPosition('events', async (stream) => {
      await rooms.insertEvent({ event: inviteEvent, stream, unsigned: { invite_room_state: [{ type: 'm.room.create', state_key: '', sender: bob, content: { room_version: '10' } }] } });
      return stream;
    });
    await rooms.setMembership(inviteEvent, position);
    // A leave for a local user with no pending invite there is refused.
    const other = await remotePdu(roomId, { type: 'm.room.member', state_key: `@frank:${LOCAL}`, content: { membership: 'leave' }, prev: [invite.id], auth: ['$create'] });
    expect((await send(roomId, other.pdu))[other.id].error).toMatch(/not in room/);
    expect(await rooms.getEvent(other.id)).toBeNull();
    // The inviter's server withdraws it (a kick of the invited user): stored, dave's membership is leave.
    const kick = await remotePdu(roomId, { type: 'm.room.member', state_key: dave, content: { membership: 'leave' }, prev: [invite.id], auth: ['$create'] });
    expect(await send(roomId, kick.pdu)).toEqual({ [kick.id]: {} });
    expect(await rooms.getMembership(roomId, dave)).toMatchObject({ membership: 'leave', event_id: kick.id });
    // Anything else of that room is still ignored (no pending invite left).
    const msg = await remotePdu(roomId, { type: 'm.room.message', content: { body: 'x' }, prev: [kick.id], auth: ['$create'] });
    expect(await send(roomId, msg.pdu)).toEqual({});
  });

  it('accepts PDUs of room version 12 (no create event among the auth events, room ID from the create event)', async () => {
    const v12 = getRoomVersion('12')!;
    const { room_id: roomId } = await writer.createRoom({
      sender: alice,
      room_version: '12',
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: {} } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
      ],
    });
    const build = async (fields: { type: string; state_key?: string; content: JsonObject }) => {
      const keys = authEventKeys({ ...fields, sender: bob }, v12);
      const auth = [...(await rooms.currentStateEventsFor(roomId, keys)).values()].map((e) => e.event_id);
      const extremities = await rooms.forwardExtremities(roomId);
      const built = buildPdu({ room_id: roomId, sender: bob, ...fields, origin_server_ts: Date.now(), depth: extremities[0].depth + 1, prev_events: extremities.map((x) => x.event_id), auth_events: auth }, v12);
      const pdu = signPdu(built, v12, REMOTE, remoteKey);
      return { pdu, id: toRoomEvent(pdu, v12).event_id };
    };
    const join = await build({ type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    expect((join.pdu.auth_events as string[]).some((id) => id === `$${roomId.slice(1)}`)).toBe(false);
    expect(await send(roomId, join.pdu)).toEqual({ [join.id]: {} });
    const msg = await build({ type: 'm.room.message', content: { body: 'v12' } });
    expect(await send(roomId, msg.pdu)).toEqual({ [msg.id]: {} });
    // bob (power 0) may not change the power levels.
    const grab = await build({ type: 'm.room.power_levels', state_key: '', content: { users: { [bob]: 100 } } });
    expect((await send(roomId, grab.pdu))[grab.id].error).toMatch(/rejected/);
    expect((await timeline(roomId)).slice(-2)).toEqual([join.id, msg.id]);
  });

  it('stores a room version 12 state as outliers in auth order, the create event first though no event names it', async () => {
    const v12 = getRoomVersion('12')!;
    const sign = (fields: Parameters<typeof buildPdu>[0]) => toRoomEvent(signPdu(buildPdu(fields, v12), v12, REMOTE, remoteKey), v12);
    const ts = Date.now();
    const create = sign({ sender: bob, type: 'm.room.create', state_key: '', content: { room_version: '12' }, origin_server_ts: ts, depth: 1, prev_events: [], auth_events: [] });
    const roomId = create.room_id;
    const join = sign({ room_id: roomId, sender: bob, type: 'm.room.member', state_key: bob, content: { membership: 'join' }, origin_server_ts: ts + 1, depth: 2, prev_events: [create.event_id], auth_events: [] });
    const levels = sign({ room_id: roomId, sender: bob, type: 'm.room.power_levels', state_key: '', content: { users: {} }, origin_server_ts: ts + 2, depth: 3, prev_events: [join.event_id], auth_events: [join.event_id] });
    const intruder = sign({ room_id: roomId, sender: carol, type: 'm.room.topic', state_key: '', content: { topic: 'mine' }, origin_server_ts: ts + 3, depth: 4, prev_events: [levels.event_id], auth_events: [levels.event_id] });
    await rooms.createRoom({ roomId, version: '12', creator: bob });
    const room = (await rooms.getRoom(roomId))!;
    // Children before parents, the create event last.
    const outcomes = await writer.serialise(roomId, () => input.storeOutliers(room, v12, [intruder, levels, join, create]));
    expect(outcomes.get(create.event_id)).toEqual({ rejected: null });
    expect(outcomes.get(join.event_id)).toEqual({ rejected: null });
    expect(outcomes.get(levels.event_id)).toEqual({ rejected: null });
    expect(outcomes.get(intruder.event_id)!.rejected).toEqual(expect.any(String));
    expect(await rooms.getEvent(join.event_id)).toMatchObject({ outlier: true, stream: NO_STREAM });
  });

  it('ignores PDUs for a room it does not know', async () => {
    const msg = await remotePdu('!unknown:elsewhere', { type: 'm.room.message', content: {}, prev: [], auth: [] });
    expect(await input.receivePdus(REMOTE, '!unknown:elsewhere', [msg.pdu as unknown as JsonObject])).toEqual({});
  });
});
