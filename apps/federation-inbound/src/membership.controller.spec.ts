/**
 * The membership handshakes over HTTP in a real Nest app (platform on
 * SQLite, the in-process bus, the real room server, X-Matrix guard and
 * federation client). A synthetic remote server (a real Ed25519 key, its keys
 * and an old-style invite endpoint served over HTTPS on 127.0.0.1 with a
 * test-CA certificate) signs its requests and events. What two real servers
 * do together is in e2e/federation/membership.e2e.spec.ts; this file covers
 * the refusals and the v1 endpoints.
 * Spec: server-server-api "Joining Rooms", "Leaving Rooms (Rejecting
 * Invites)", "Inviting to a room"; joins-v1/v2, leaving-v2, invites-v1/v2.
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
  type UnsignedPdu,
} from '@atrium/matrix';
import { createHttpApp, openPlatform, type Platform } from '@atrium/platform';
import { eventOf, RoomStore } from '@atrium/rooms';
import { createTestCa } from '@atrium/test-servers';
import { ROOM_SERVER_SUBJECTS, RoomServerModule, type CreateRoomRequest, type CreateRoomResponse, type SendEventRequest, type SendEventResponse } from '@atrium/app-room-server';
import { FederationInboundModule } from './federation-inbound.module';

const OUR_NAME = 'inbound-membership.test';
const alice = `@alice:${OUR_NAME}`;
const enc = encodeURIComponent;

describe('federation-inbound membership handshakes', () => {
  let platform: Platform;
  let app: NestFastifyApplication;
  let base: string;
  let rooms: RoomStore;
  let remoteName: string;
  let remoteKey: SigningKey;
  let remoteServer: Server;
  /** Invites the synthetic server was asked to sign, by API version. */
  const invitesSeen: Array<{ version: 'v1' | 'v2'; body: JsonObject }> = [];
  const ca = createTestCa();

  async function startRemote(): Promise<void> {
    const cert = ca.issue(['127.0.0.1']);
    remoteKey = generateSigningKey();
    remoteServer = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        const answer = (status: number, body: unknown): void => {
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        const url = req.url ?? '';
        if (url === '/_matrix/key/v2/server') return answer(200, buildServerKeys({ serverName: remoteName, signingKeys: [remoteKey], validUntilTs: Date.now() + 3600_000 }));
        // An older server: no v2 invite (404), a v1 invite that signs the event as it came.
        if (req.method === 'PUT' && url.startsWith('/_matrix/federation/v2/invite/')) {
          invitesSeen.push({ version: 'v2', body: JSON.parse(raw) as JsonObject });
          return answer(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
        }
        if (req.method === 'PUT' && url.startsWith('/_matrix/federation/v1/invite/')) {
          const body = JSON.parse(raw) as JsonObject;
          invitesSeen.push({ version: 'v1', body });
          return answer(200, [200, { event: signPdu(body as unknown as UnsignedPdu, '2', remoteName, remoteKey) }]);
        }
        answer(404, { errcode: 'M_NOT_FOUND', error: 'no' });
      });
    });
    await new Promise<void>((resolve) => remoteServer.listen(0, '127.0.0.1', resolve));
    remoteName = `127.0.0.1:${(remoteServer.address() as AddressInfo).port}`;
  }

  async function call(method: 'GET' | 'PUT', uri: string, body?: JsonObject | unknown[]): Promise<{ status: number; json: Record<string, unknown> }> {
    const authorization = signRequest({ method, uri, origin: remoteName, destination: OUR_NAME, content: body as JsonObject | undefined }, remoteKey);
    const res = await fetch(`${base}${uri}`, {
      method,
      headers: { Authorization: authorization, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  async function createRoom(version: string, joinRule = 'public'): Promise<string> {
    const created = await platform.bus.request<CreateRoomRequest, CreateRoomResponse>(ROOM_SERVER_SUBJECTS.createRoom, {
      sender: alice,
      room_version: version,
      creation_content: {},
      visibility: 'public',
      events: [
        { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
        { type: 'm.room.power_levels', state_key: '', content: { users: Number(version) >= 12 ? {} : { [alice]: 100 } } },
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: joinRule } },
        { type: 'm.room.name', state_key: '', content: { name: `Room v${version}` } },
      ],
    });
    return created.room_id;
  }

  /** make_* then the template filled in and signed by the synthetic server, as a joining server does. */
  async function madeAndSigned(kind: 'join' | 'leave', roomId: string, userId: string): Promise<{ pdu: Pdu; id: string }> {
    const made = await call('GET', `/_matrix/federation/v1/make_${kind}/${enc(roomId)}/${enc(userId)}${kind === 'join' ? '?ver=10&ver=11' : ''}`);
    expect(made.status).toBe(200);
    const version = getRoomVersion(made.json['room_version'] as string);
    if (!version) throw new Error(`make_${kind} answered an unknown room version`);
    const template = made.json['event'] as JsonObject;
    const { origin: _origin, ...fields } = template;
    const pdu = signPdu({ ...(fields as unknown as UnsignedPdu), origin_server_ts: Date.now() }, version, remoteName, remoteKey);
    return { pdu, id: toRoomEvent(pdu, version).event_id };
  }

  beforeAll(async () => {
    await startRemote();
    const dir = mkdtempSync(join(tmpdir(), 'atrium-inbound-membership-'));
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
    platform = await openPlatform(config, 'inbound-membership-test');
    app = await createHttpApp({ platform, modules: [FederationClientModule, RoomServerModule, FederationInboundModule] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    rooms = await RoomStore.open(platform.store);
    await platform.accounts.createUser({ userId: alice, localpart: 'alice', passwordHash: null });
  });

  afterAll(async () => {
    await app?.close();
    await platform?.close();
    if (remoteServer) await new Promise<void>((resolve) => remoteServer.close(() => resolve()));
  });

  it('make_join: 403 for a user of another server than the origin, 400 M_INCOMPATIBLE_ROOM_VERSION without the room version in `ver`, 404 for an unknown room', async () => {
    const roomId = await createRoom('10');
    expect(await call('GET', `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc('@eve:elsewhere.test')}?ver=10`)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    expect(await call('GET', `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(`@bob:${remoteName}`)}`)).toMatchObject({
      status: 400,
      json: { errcode: 'M_INCOMPATIBLE_ROOM_VERSION', room_version: '10' },
    });
    expect(await call('GET', `/_matrix/federation/v1/make_join/${enc(`!nope:${OUR_NAME}`)}/${enc(`@bob:${remoteName}`)}?ver=10`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
  });

  it('send_join v2: the state before the join, its auth chain, the servers in the room; the same join again gets the same answer; then send_leave v2', async () => {
    const roomId = await createRoom('10');
    const bob = `@bob:${remoteName}`;
    const { pdu, id } = await madeAndSigned('join', roomId, bob);
    const sent = await call('PUT', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(id)}`, pdu as unknown as JsonObject);
    expect(sent.status).toBe(200);
    expect(sent.json).toMatchObject({ members_omitted: false, origin: OUR_NAME });
    expect((sent.json['servers_in_room'] as string[]).sort()).toEqual([OUR_NAME, remoteName].sort());
    const stateTypes = (sent.json['state'] as JsonObject[]).map((e) => `${e['type']}|${e['state_key']}`).sort();
    expect(stateTypes).toEqual(['m.room.create|', 'm.room.join_rules|', `m.room.member|${alice}`, 'm.room.name|', 'm.room.power_levels|'].sort());
    const chainTypes = new Set((sent.json['auth_chain'] as JsonObject[]).map((e) => e['type']));
    expect(chainTypes).toEqual(new Set(['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules']));
    expect((await rooms.getMembership(roomId, bob))?.membership).toBe('join');
    // A retry (the first answer was lost) answers the same, and stores nothing twice.
    const again = await call('PUT', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(id)}`, pdu as unknown as JsonObject);
    expect(again.status).toBe(200);
    expect((again.json['state'] as JsonObject[]).length).toBe(stateTypes.length);

    const leave = await madeAndSigned('leave', roomId, bob);
    expect(await call('PUT', `/_matrix/federation/v2/send_leave/${enc(roomId)}/${enc(leave.id)}`, leave.pdu as unknown as JsonObject)).toMatchObject({ status: 200, json: {} });
    expect((await rooms.getMembership(roomId, bob))?.membership).toBe('leave');
  });

  it('send_join refuses an event whose ID is not the path\'s (400), a forged signature (403), a join of another server\'s user (403)', async () => {
    const roomId = await createRoom('10');
    const carol = `@carol:${remoteName}`;
    const { pdu, id } = await madeAndSigned('join', roomId, carol);
    expect(await call('PUT', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc('$other')}`, pdu as unknown as JsonObject)).toMatchObject({ status: 400 });
    const forged = { ...pdu, signatures: { [remoteName]: { [remoteKey.keyId]: 'A'.repeat(86) } } };
    expect(await call('PUT', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(id)}`, forged as unknown as JsonObject)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    const foreign = { ...pdu, sender: '@dan:elsewhere.test', state_key: '@dan:elsewhere.test' };
    expect(await call('PUT', `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(id)}`, foreign as unknown as JsonObject)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    expect((await rooms.getMembership(roomId, carol))).toBeNull();
  });

  it('invite v1 (rooms v1–v2): the event signed by this server as `[200, {event}]`, stored for the invitee; 404 for an unknown user', async () => {
    const roomId = `!v1room:${remoteName}`;
    const inviter = `@inviter:${remoteName}`;
    const invite = (target: string): Pdu =>
      signPdu(
        buildPdu({ room_id: roomId, sender: inviter, type: 'm.room.member', state_key: target, content: { membership: 'invite' }, origin_server_ts: Date.now(), depth: 4, prev_events: [], auth_events: [] }, '1'),
        '1',
        remoteName,
        remoteKey,
      );
    const create = { type: 'm.room.create', state_key: '', sender: inviter, content: { room_version: '1', creator: inviter } };
    const event = { ...invite(alice), unsigned: { invite_room_state: [create] } } as unknown as JsonObject;
    const res = await call('PUT', `/_matrix/federation/v1/invite/${enc(roomId)}/${enc(event['event_id'] as string)}`, event);
    expect(res.status).toBe(200);
    const [status, body] = res.json as unknown as [number, { event: JsonObject }];
    expect(status).toBe(200);
    expect(Object.keys(body.event['signatures'] as JsonObject).sort()).toEqual([OUR_NAME, remoteName].sort());
    const stored = await rooms.getMembership(roomId, alice);
    expect(stored).toMatchObject({ membership: 'invite', sender: inviter });

    const unknown = invite(`@ghost:${OUR_NAME}`) as unknown as JsonObject;
    expect(await call('PUT', `/_matrix/federation/v1/invite/${enc(roomId)}/${enc(unknown['event_id'] as string)}`, unknown)).toMatchObject({ status: 404 });
  });

  it('a local invite of a user of an older server falls back to PUT /v1/invite for a room version 2 room and persists the invitee server\'s signature', async () => {
    const roomId = await createRoom('2');
    const target = `@old:${remoteName}`;
    const sent = await platform.bus.request<SendEventRequest, SendEventResponse>(ROOM_SERVER_SUBJECTS.sendEvent, {
      room_id: roomId,
      sender: alice,
      type: 'm.room.member',
      state_key: target,
      content: { membership: 'invite' },
    });
    expect(invitesSeen.map((i) => i.version)).toEqual(['v2', 'v1']);
    const v1Body = invitesSeen[1].body;
    expect(((v1Body['unsigned'] as JsonObject)['invite_room_state'] as JsonObject[]).some((e) => e['type'] === 'm.room.create')).toBe(true);
    const record = await rooms.getEvent(sent.event_id);
    expect(Object.keys(eventOf(record!).signatures).sort()).toEqual([OUR_NAME, remoteName].sort());
    expect((await rooms.getMembership(roomId, target))?.membership).toBe('invite');
  });
});
