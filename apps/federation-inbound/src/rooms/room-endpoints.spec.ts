/**
 * The inbound room endpoints (/send and the room reads) in a real Nest app:
 * platform on SQLite, the in-process bus, the real room server and X-Matrix
 * guard. Two synthetic remote servers (real Ed25519 keys, keys served over
 * HTTPS on 127.0.0.1 with test-CA certificates) sign their requests and PDUs;
 * one joins a local room, the other never does.
 * Spec: server-server-api "Transactions", "Retrieving events", "Backfilling
 * and retrieving missing events", "Server Access Control Lists".
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:https';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { buildConfig } from '@atrium/config';
import { FederationClientModule } from '@atrium/federation-client';
import {
  authEventKeys,
  buildPdu,
  buildServerKeys,
  generateSigningKey,
  getRoomVersion,
  serialiseSigningKeyFile,
  signPdu,
  signRequest,
  toRoomEvent,
  type JsonObject,
  type Pdu,
  type SigningKey,
} from '@atrium/matrix';
import { createHttpApp, openPlatform, type Platform } from '@atrium/platform';
import { RoomStore } from '@atrium/rooms';
import { createTestCa } from '@atrium/test-servers';
import { ROOM_SERVER_SUBJECTS, RoomServerModule, type CreateRoomRequest, type CreateRoomResponse, type SendEventRequest, type SendEventResponse } from '@atrium/app-room-server';
import { FederationInboundModule } from '../federation-inbound.module';

const OUR_NAME = 'inbound-rooms.test';
const VERSION = getRoomVersion('10')!;
const alice = `@alice:${OUR_NAME}`;

interface Remote {
  name: string;
  key: SigningKey;
  server: Server;
}

describe('federation-inbound room endpoints', () => {
  let platform: Platform;
  let app: NestFastifyApplication;
  let base: string;
  let rooms: RoomStore;
  let member: Remote;
  let stranger: Remote;
  let roomId: string;
  let bob: string;
  let joinId: string;
  const messages: string[] = [];
  const ca = createTestCa();

  async function startRemote(): Promise<Remote> {
    const cert = ca.issue(['127.0.0.1']);
    const key = generateSigningKey();
    const remote: Remote = { name: '', key, server: undefined as unknown as Server };
    remote.server = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
      if (req.url === '/_matrix/key/v2/server') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(buildServerKeys({ serverName: remote.name, signingKeys: [key], validUntilTs: Date.now() + 3600_000 })));
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"errcode":"M_NOT_FOUND","error":"no"}');
      }
    });
    await new Promise<void>((resolve) => remote.server.listen(0, '127.0.0.1', resolve));
    remote.name = `127.0.0.1:${(remote.server.address() as AddressInfo).port}`;
    return remote;
  }

  async function call(remote: Remote, method: 'GET' | 'PUT' | 'POST', uri: string, body?: JsonObject): Promise<{ status: number; json: Record<string, unknown> }> {
    const authorization = signRequest({ method, uri, origin: remote.name, destination: OUR_NAME, content: body }, remote.key);
    const res = await fetch(`${base}${uri}`, {
      method,
      headers: { Authorization: authorization, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  async function pdu(remote: Remote, sender: string, fields: { type: string; state_key?: string; content: JsonObject }): Promise<{ pdu: Pdu; id: string }> {
    const prev = (await rooms.forwardExtremities(roomId)).map((x) => x.event_id);
    const depth = Math.max(...(await rooms.forwardExtremities(roomId)).map((x) => x.depth)) + 1;
    const state = await rooms.currentStateEventsFor(roomId, authEventKeys({ ...fields, sender }, VERSION));
    const built = buildPdu({ room_id: roomId, sender, ...fields, origin_server_ts: Date.now(), depth, prev_events: prev, auth_events: [...state.values()].map((e) => e.event_id) }, VERSION);
    const signed = signPdu(built, VERSION, remote.name, remote.key);
    return { pdu: signed, id: toRoomEvent(signed, VERSION).event_id };
  }

  /** Who the EDU owner (federation-inbound's INCOMING_EDU_HANDLER) recorded as typing in the room. */
  async function typingUsers(): Promise<string[]> {
    const typing = await platform.store.collection<{ _id: string; room_id: string; user_id: string; typing: boolean }>({ name: 'typing' });
    return (await typing.find({ room_id: roomId, typing: true })).map((t) => t.user_id);
  }

  const localSend = (request: Omit<SendEventRequest, 'room_id'>) => platform.bus.request<SendEventRequest, SendEventResponse>(ROOM_SERVER_SUBJECTS.sendEvent, { room_id: roomId, ...request });
  const enc = encodeURIComponent;
  const txn = (pdus: Pdu[], edus: JsonObject[] = []): JsonObject => ({ origin: member.name, origin_server_ts: Date.now(), pdus: pdus as unknown as JsonObject[], edus });

  beforeAll(async () => {
    member = await startRemote();
    stranger = await startRemote();
    bob = `@bob:${member.name}`;
    const dir = mkdtempSync(join(tmpdir(), 'atrium-inbound-rooms-'));
    writeFileSync(join(dir, 'signing.key'), serialiseSigningKeyFile([generateSigningKey()]));
    const config = buildConfig(
      [
        `server_name: ${OUR_NAME}`,
        `data_dir: ${dir}`,
        'storage: { url: "sqlite::memory:" }',
        'telemetry: { log_level: silent }',
        'federation:',
        `  trusted_ca_paths: [${ca.certPath}]`,
        '  ip_range_allowlist: [127.0.0.1/32]',
        '',
      ].join('\n'),
    );
    platform = await openPlatform(config, 'inbound-rooms-test');
    app = await createHttpApp({ platform, modules: [FederationClientModule, RoomServerModule, FederationInboundModule] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    rooms = await RoomStore.open(platform.store);

    const created = await platform.bus.request<CreateRoomRequest, CreateRoomResponse>(ROOM_SERVER_SUBJECTS.createRoom, {
      sender: alice,
      room_version: '10',
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: { [alice]: 100 }, state_default: 50, events_default: 0 } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
        { type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } },
      ],
    });
    roomId = created.room_id;
    for (let i = 0; i < 3; i++) messages.push((await localSend({ sender: alice, type: 'm.room.message', content: { body: `m${i}` } })).event_id);
  });

  afterAll(async () => {
    await app?.close();
    await platform?.close();
    for (const r of [member, stranger]) if (r) await new Promise<void>((resolve) => r.server.close(() => resolve()));
  });

  it('refuses the room reads to a server with nobody in the room (403 M_FORBIDDEN) and unknown rooms (404)', async () => {
    const uris = [
      `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(messages[0])}`,
      `/_matrix/federation/v1/state/${enc(roomId)}?event_id=${enc(messages[0])}`,
      `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(messages[0])}`,
      `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(messages[2])}&limit=5`,
      `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}?ts=0&dir=f`,
      `/_matrix/federation/v1/event/${enc(messages[0])}`,
    ];
    for (const uri of uris) expect(await call(stranger, 'GET', uri)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    expect(await call(stranger, 'POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { earliest_events: [], latest_events: [messages[2]] })).toMatchObject({ status: 403 });
    expect(await call(stranger, 'GET', `/_matrix/federation/v1/state_ids/${enc('!nope:x')}?event_id=${enc(messages[0])}`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
  });

  it('accepts a transaction: a join and a message in order, EDUs to the handler, per-PDU results', async () => {
    const join = await pdu(member, bob, { type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    joinId = join.id;
    const res = await call(member, 'PUT', '/_matrix/federation/v1/send/txn1', txn([join.pdu], [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: true } }]));
    expect(res).toEqual({ status: 200, json: { pdus: { [join.id]: {} } } });
    const msg = await pdu(member, bob, { type: 'm.room.message', content: { body: 'hello' } });
    const notInRoom = await pdu(member, `@carol:${member.name}`, { type: 'm.room.message', content: { body: 'not joined' } });
    const res2 = await call(member, 'PUT', '/_matrix/federation/v1/send/txn2', txn([msg.pdu, notInRoom.pdu]));
    expect(res2.status).toBe(200);
    expect(res2.json['pdus']).toEqual({ [msg.id]: {}, [notInRoom.id]: { error: expect.stringMatching(/rejected/) } });
    expect((await rooms.getMembership(roomId, bob))!.membership).toBe('join');
    // The m.typing EDU reached its owner.
    expect(await typingUsers()).toEqual([bob]);
    messages.push(msg.id);
  });

  it('answers a repeated transaction ID with the stored result without processing its body again', async () => {
    const other = await pdu(member, bob, { type: 'm.room.message', content: { body: 'same txn id, new body' } });
    const res = await call(member, 'PUT', '/_matrix/federation/v1/send/txn1', txn([other.pdu]));
    expect(res).toEqual({ status: 200, json: { pdus: { [joinId]: {} } } });
    expect(await rooms.getEvent(other.id)).toBeNull();
  });

  it('refuses more than 50 PDUs or 100 EDUs with 400 M_BAD_JSON, and a body without pdus', async () => {
    const one = (await pdu(member, bob, { type: 'm.room.message', content: { body: 'x' } })).pdu;
    expect(await call(member, 'PUT', '/_matrix/federation/v1/send/big1', txn(Array.from({ length: 51 }, () => one)))).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
    const edus = Array.from({ length: 101 }, () => ({ edu_type: 'm.presence', content: { push: [] } }));
    expect(await call(member, 'PUT', '/_matrix/federation/v1/send/big2', txn([], edus))).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
    expect(await call(member, 'PUT', '/_matrix/federation/v1/send/bad', { origin: member.name, origin_server_ts: 1 })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
  });

  it('serves the state before an event, its auth chain, single events, backfill, missing events and timestamps to a server in the room', async () => {
    const lastMsg = messages[messages.length - 1];
    const ids = await call(member, 'GET', `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(lastMsg)}`);
    expect(ids.status).toBe(200);
    const current = (await rooms.currentStateIds(roomId)).map((s) => s.event_id).sort();
    expect([...(ids.json['pdu_ids'] as string[])].sort()).toEqual(current);
    expect((ids.json['auth_chain_ids'] as string[]).length).toBeGreaterThan(0);
    // The state before the join does not hold the join.
    const beforeJoin = await call(member, 'GET', `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(joinId)}`);
    expect(beforeJoin.json['pdu_ids']).not.toContain(joinId);

    const full = await call(member, 'GET', `/_matrix/federation/v1/state/${enc(roomId)}?event_id=${enc(lastMsg)}`);
    expect(full.status).toBe(200);
    const served = full.json['pdus'] as Pdu[];
    expect(served.map((p) => toRoomEvent(p, VERSION).event_id).sort()).toEqual(current);
    // Wire format for v3+: no event_id.
    expect(served.every((p) => p.event_id === undefined)).toBe(true);

    const auth = await call(member, 'GET', `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(lastMsg)}`);
    expect((auth.json['auth_chain'] as Pdu[]).some((p) => p.type === 'm.room.create')).toBe(true);

    const one = await call(member, 'GET', `/_matrix/federation/v1/event/${enc(lastMsg)}`);
    expect(one).toMatchObject({ status: 200, json: { origin: OUR_NAME } });
    expect(toRoomEvent((one.json['pdus'] as Pdu[])[0], VERSION).event_id).toBe(lastMsg);
    expect(await call(member, 'GET', `/_matrix/federation/v1/event/${enc('$unknown')}`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });

    const back = await call(member, 'GET', `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(lastMsg)}&limit=3`);
    const backIds = (back.json['pdus'] as Pdu[]).map((p) => toRoomEvent(p, VERSION).event_id);
    expect(backIds).toEqual([lastMsg, joinId, messages[2]]);

    const missing = await call(member, 'POST', `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, { earliest_events: [messages[1]], latest_events: [lastMsg], limit: 10 });
    expect((missing.json['events'] as Pdu[]).map((p) => toRoomEvent(p, VERSION).event_id)).toEqual([messages[2], joinId]);

    const rec = (await rooms.getEvent(messages[0]))!;
    expect(await call(member, 'GET', `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}?ts=${rec.origin_server_ts}&dir=f`)).toMatchObject({ status: 200, json: { event_id: messages[0] } });
    expect(await call(member, 'GET', `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}?ts=1&dir=b`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
    expect(await call(member, 'GET', `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}?ts=1&dir=x`)).toMatchObject({ status: 400 });
  });

  it('hides events from before the server joined under history visibility "joined"', async () => {
    // messages[0] was sent before bob joined; the room's visibility is "joined".
    expect(await call(member, 'GET', `/_matrix/federation/v1/event/${enc(messages[0])}`)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    // /backfill serves it redacted (same event ID, no content), so the DAG stays whole.
    const back = await call(member, 'GET', `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(joinId)}&limit=20`);
    const pdus = back.json['pdus'] as Pdu[];
    const early = pdus.find((p) => toRoomEvent(p, VERSION).event_id === messages[0]);
    expect(early).toBeDefined();
    expect(early!.content).toEqual({});
    expect(pdus.find((p) => toRoomEvent(p, VERSION).event_id === joinId)!.content).toEqual({ membership: 'join' });
    expect(pdus.some((p) => p.type === 'm.room.create')).toBe(true);
  });

  it('applies the server ACL: 403 on the reads, an error per PDU in /send, EDUs of the room dropped', async () => {
    // bob stops typing before the ACL; afterwards a denied server's m.typing for the room is ignored.
    await call(member, 'PUT', '/_matrix/federation/v1/send/txn-stop', txn([], [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: false } }]));
    expect(await typingUsers()).toEqual([]);
    await localSend({ sender: alice, type: 'm.room.server_acl', state_key: '', content: { allow: ['*'], deny: ['127.0.0.1'] } });
    const last = (await rooms.forwardExtremities(roomId))[0].event_id;
    expect(await call(member, 'GET', `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(last)}`)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    const msg = await pdu(member, bob, { type: 'm.room.message', content: { body: 'denied' } });
    const res = await call(member, 'PUT', '/_matrix/federation/v1/send/txn-acl', txn([msg.pdu], [{ edu_type: 'm.typing', content: { room_id: roomId, user_id: bob, typing: true } }]));
    expect(res.status).toBe(200);
    expect((res.json['pdus'] as Record<string, { error?: string }>)[msg.id].error).toMatch(/ACL/);
    expect(await typingUsers()).toEqual([]);
  });
});
