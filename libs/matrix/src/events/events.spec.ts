/**
 * Event hashing, IDs and signing: appendices.md "Event Signing" test vectors
 * (which use the v1–v10 redaction rules), server-server-api.md "Calculating
 * the content hash/reference hash", event ID formats of rooms v1, v3, v4 and
 * the v12 room ID.
 */
import { createHash } from 'node:crypto';
import { decodeBase64, encodeBase64, encodeBase64Url } from '../base64';
import { isValidEventId, isValidRoomId } from '../identifiers';
import { ROOM_VERSIONS, type RoomVersionId } from '../room-versions';
import { generateSigningKey, signingKeyFromSeed, signJson, type KnownVerifyKey, type SigningKey } from '../signing';
import { buildPdu } from './build-pdu';
import {
  checkContentHash,
  computeEventId,
  contentHash,
  eventReference,
  referenceHash,
  roomIdFromCreateEvent,
  toRoomEvent,
  toWirePdu,
} from './event-hashes';
import { checkPduHashesAndSignatures, requiredSigners, signPdu, verifyPduSignatures } from './event-signing';
import type { Pdu } from './pdu';

const specKey = (): SigningKey => signingKeyFromSeed(decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'), '1');
const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

describe('event signing test vectors (appendices.md "Event Signing")', () => {
  it('signs the minimally-sized event', () => {
    const event = {
      room_id: '!x:domain',
      sender: '@a:domain',
      origin: 'domain',
      origin_server_ts: 1000000,
      signatures: {},
      hashes: {},
      type: 'X',
      content: {},
      prev_events: [],
      auth_events: [],
      depth: 3,
      unsigned: { age_ts: 1000000 },
    } as unknown as Pdu;
    expect(signPdu(event, '1', 'domain', specKey())).toEqual({
      auth_events: [],
      content: {},
      depth: 3,
      hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
      origin: 'domain',
      origin_server_ts: 1000000,
      prev_events: [],
      room_id: '!x:domain',
      sender: '@a:domain',
      signatures: {
        domain: {
          'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg',
        },
      },
      type: 'X',
      unsigned: { age_ts: 1000000 },
    });
  });

  it('signs the event containing redactable content', () => {
    const event = {
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {},
      unsigned: { age_ts: 1000000 },
    } as unknown as Pdu;
    const signed = signPdu(event, '1', 'domain', specKey());
    expect(signed).toEqual({
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {
        domain: {
          'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA',
        },
      },
      unsigned: { age_ts: 1000000 },
    });
    // The vectors hold for every version with the v1–v10 rules and a carried
    // event_id, i.e. rooms v1 and v2.
    expect(signPdu(event, '2', 'domain', specKey()).signatures).toEqual(signed.signatures);
    // And the signed vector verifies, including after redaction.
    const lookup = () => ({ key: specKey().publicKeyBase64 });
    expect(verifyPduSignatures(signed, '1', lookup).ok).toBe(true);
    expect(checkContentHash(signed, '1')).toBe(true);
    const { body: _body, ...noBody } = signed.content;
    expect(verifyPduSignatures({ ...signed, content: noBody }, '1', lookup).ok).toBe(true);
    expect(checkContentHash({ ...signed, content: noBody }, '1')).toBe(false);
  });
});

/** A v3+ message event built by hand, with the redacted canonical JSON written out independently. */
const message = {
  auth_events: ['$auth1', '$auth2'],
  content: { body: 'hello', msgtype: 'm.text' },
  depth: 7,
  hashes: { sha256: 'ignored-by-content-hash' },
  origin_server_ts: 1700000000000,
  prev_events: ['$prev'],
  room_id: '!room:example.org',
  sender: '@alice:example.org',
  signatures: { 'example.org': { 'ed25519:x': 'sig' } },
  type: 'm.room.message',
  unsigned: { age: 5 },
} as unknown as Pdu;
const MESSAGE_CONTENT_HASH_INPUT =
  '{"auth_events":["$auth1","$auth2"],"content":{"body":"hello","msgtype":"m.text"},"depth":7,"origin_server_ts":1700000000000,"prev_events":["$prev"],"room_id":"!room:example.org","sender":"@alice:example.org","type":"m.room.message"}';
const MESSAGE_REFERENCE_HASH_INPUT =
  '{"auth_events":["$auth1","$auth2"],"content":{},"depth":7,"hashes":{"sha256":"ignored-by-content-hash"},"origin_server_ts":1700000000000,"prev_events":["$prev"],"room_id":"!room:example.org","sender":"@alice:example.org","type":"m.room.message"}';

describe('content hash and reference hash (server-server-api.md)', () => {
  it('content hash drops unsigned, signatures and hashes, keeps the rest', () => {
    expect(contentHash(message, '4').equals(sha256(MESSAGE_CONTENT_HASH_INPUT))).toBe(true);
  });

  it('reference hash is over the redacted event without signatures and unsigned', () => {
    expect(referenceHash(message, '4').equals(sha256(MESSAGE_REFERENCE_HASH_INPUT))).toBe(true);
  });

  it('checkContentHash compares hashes.sha256', () => {
    const hashed = { ...message, hashes: { sha256: encodeBase64(sha256(MESSAGE_CONTENT_HASH_INPUT)) } };
    expect(checkContentHash(hashed, '4')).toBe(true);
    expect(checkContentHash({ ...hashed, content: { body: 'changed' } }, '4')).toBe(false);
    expect(checkContentHash({ ...hashed, hashes: { sha256: 'not base64!' } } as unknown as Pdu, '4')).toBe(false);
    expect(checkContentHash({ ...hashed, hashes: undefined } as unknown as Pdu, '4')).toBe(false);
  });

  it('v6+ refuses to hash numbers canonical JSON forbids; v1–v5 hash them', () => {
    const floaty = { ...message, content: { n: 1.5 } } as unknown as Pdu;
    expect(() => contentHash(floaty, '6')).toThrow();
    expect(contentHash(floaty, '5').equals(sha256(MESSAGE_CONTENT_HASH_INPUT.replace('{"body":"hello","msgtype":"m.text"}', '{"n":1.5}')))).toBe(true);
  });
});

describe('event IDs per room version', () => {
  it('v1–v2 carry the event ID', () => {
    expect(computeEventId({ ...message, event_id: '$abc:example.org' }, '1')).toBe('$abc:example.org');
    expect(() => computeEventId(message, '2')).toThrow(/carry/);
  });

  it('v3 uses standard unpadded Base64 of the reference hash', () => {
    expect(computeEventId(message, '3')).toBe(`$${encodeBase64(sha256(MESSAGE_REFERENCE_HASH_INPUT))}`);
  });

  it('v4+ uses URL-safe unpadded Base64', () => {
    const id = computeEventId(message, '4');
    expect(id).toBe(`$${encodeBase64Url(sha256(MESSAGE_REFERENCE_HASH_INPUT))}`);
    expect(id).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
    for (const v of ['5', '6', '7', '8', '9', '10'] as RoomVersionId[]) expect(computeEventId(message, v)).toBe(id);
    // This hash has a `/`, so the two alphabets give different IDs.
    expect(computeEventId(message, '3')).toContain('/');
    expect(id).not.toBe(computeEventId(message, '3'));
    expect(isValidEventId(id, ROOM_VERSIONS['4'])).toBe(true);
    expect(isValidEventId(computeEventId(message, '3'), ROOM_VERSIONS['3'])).toBe(true);
  });

  it('the event ID does not depend on non-essential fields, signatures or unsigned', () => {
    const id = computeEventId(message, '10');
    expect(computeEventId({ ...message, content: { body: 'other' }, unsigned: {}, signatures: {} }, '10')).toBe(id);
    expect(computeEventId({ ...message, depth: 8 }, '10')).not.toBe(id);
  });

  it('v11 drops origin and membership from the reference hash, v10 keeps them', () => {
    const withOrigin = { ...message, origin: 'example.org' } as Pdu;
    expect(computeEventId(withOrigin, '11')).toBe(computeEventId(message, '11'));
    expect(computeEventId(withOrigin, '10')).not.toBe(computeEventId(message, '10'));
  });

  it('toRoomEvent adds event_id, and hashing a RoomEvent gives the same answers as its PDU', () => {
    const event = toRoomEvent(message, '10');
    expect(event.event_id).toBe(computeEventId(message, '10'));
    expect(computeEventId(event, '10')).toBe(event.event_id);
    expect(contentHash(event, '10').equals(contentHash(message, '10'))).toBe(true);
    expect(toWirePdu(event, '10')).toEqual(message);
    expect(toWirePdu({ ...message, event_id: '$x:y' }, '1')).toEqual({ ...message, event_id: '$x:y' });
  });

  it('eventReference gives [event_id, {sha256: reference hash}] for v1–v2', () => {
    const v1 = { ...message, event_id: '$e:example.org' } as Pdu;
    expect(eventReference(v1, '1')).toEqual(['$e:example.org', { sha256: encodeBase64(referenceHash(v1, '1')) }]);
  });
});

describe('room version 12 room IDs', () => {
  const create = {
    auth_events: [],
    content: { room_version: '12', additional_creators: ['@bob:example.org'] },
    depth: 1,
    hashes: { sha256: 'x' },
    origin_server_ts: 1700000000000,
    prev_events: [],
    sender: '@alice:example.org',
    signatures: {},
    state_key: '',
    type: 'm.room.create',
  } as unknown as Pdu;
  const REDACTED_CREATE =
    '{"auth_events":[],"content":{"additional_creators":["@bob:example.org"],"room_version":"12"},"depth":1,"hashes":{"sha256":"x"},"origin_server_ts":1700000000000,"prev_events":[],"sender":"@alice:example.org","state_key":"","type":"m.room.create"}';

  it('is ! + the URL-safe reference hash of the create event (its event ID with ! for $)', () => {
    const roomId = roomIdFromCreateEvent(create);
    expect(roomId).toBe(`!${encodeBase64Url(sha256(REDACTED_CREATE))}`);
    expect(roomId.slice(1)).toBe(computeEventId(create, '12').slice(1));
    expect(() => roomIdFromCreateEvent(create, '11')).toThrow();
    expect(isValidRoomId(roomId, ROOM_VERSIONS['12'])).toBe(true);
  });

  it('toRoomEvent fills room_id for the create event and keeps hashes stable', () => {
    const event = toRoomEvent(create, '12');
    expect(event.room_id).toBe(roomIdFromCreateEvent(create));
    expect(event.event_id).toBe(`$${event.room_id.slice(1)}`);
    expect(computeEventId(event, '12')).toBe(event.event_id);
    expect(toWirePdu(event, '12')).toEqual(create);
  });

  it('a create PDU that came with its own room_id keeps it, and it changes the hash', () => {
    const withRoomId = { ...create, room_id: '!other:example.org' };
    const event = toRoomEvent(withRoomId, '12');
    expect(event.room_id).toBe('!other:example.org');
    expect(event.event_id).not.toBe(computeEventId(create, '12'));
  });

  it('other v12 events need their room_id', () => {
    expect(() => toRoomEvent({ ...message, room_id: undefined } as unknown as Pdu, '12')).toThrow(/room_id/);
    expect(toRoomEvent(message, '12').room_id).toBe('!room:example.org');
  });
});

describe('signPdu and verification', () => {
  const key = generateSigningKey('k');
  const other = generateSigningKey('o');
  const known: Record<string, Record<string, KnownVerifyKey>> = {
    'example.org': { 'ed25519:k': { key: key.publicKeyBase64 } },
    'other.org': { 'ed25519:o': { key: other.publicKeyBase64 } },
  };
  const lookup = (server: string, keyId: string) => known[server]?.[keyId];
  // The fixture's placeholder signature would be checked by catch-all lookups.
  const fresh = { ...message, signatures: {} } as Pdu;

  it('signs, verifies and survives redaction for every room version', () => {
    for (const id of Object.keys(ROOM_VERSIONS) as RoomVersionId[]) {
      const explicit = ROOM_VERSIONS[id].eventIdFormat === 'explicit';
      const pdu = explicit ? { ...message, event_id: '$m:example.org', prev_events: [], auth_events: [] } : message;
      const signed = signPdu(pdu as Pdu, id, 'example.org', key);
      expect([id, verifyPduSignatures(signed, id, lookup).ok]).toEqual([id, true]);
      expect(checkPduHashesAndSignatures(signed, id, lookup).outcome).toBe('accept');
      // A changed body: signature fine, hash not: use the redacted copy.
      const edited = { ...signed, content: { body: 'evil' } };
      const result = checkPduHashesAndSignatures(edited, id, lookup);
      expect(result.outcome).toBe('redact');
      if (result.outcome === 'redact') expect(result.event.content).toEqual({});
      // A changed essential field: signature fails.
      expect(checkPduHashesAndSignatures({ ...signed, depth: 99 }, id, lookup)).toMatchObject({
        outcome: 'reject',
        signatures: { ok: false, reason: 'bad-signature', serverName: 'example.org' },
      });
    }
  });

  it('verifies a RoomEvent made from the signed PDU (v12 create included)', () => {
    const create = buildPdu(
      { sender: '@alice:example.org', type: 'm.room.create', state_key: '', content: { room_version: '12' }, origin_server_ts: 1, depth: 1, prev_events: [], auth_events: [] },
      '12',
    );
    const signed = signPdu(create, '12', 'example.org', key);
    const event = toRoomEvent(signed, '12');
    expect(verifyPduSignatures(event, '12', lookup).ok).toBe(true);
    expect(checkContentHash(event, '12')).toBe(true);
  });

  it('keeps existing signatures when a second server signs', () => {
    const signed = signPdu(signPdu(fresh, '10', 'example.org', key), '10', 'other.org', other);
    expect(Object.keys(signed.signatures).sort()).toEqual(['example.org', 'other.org']);
    expect(verifyPduSignatures(signed, '10', lookup, { requiredServers: ['example.org', 'other.org'] }).ok).toBe(true);
  });

  it('from v5, ignores keys that expired before origin_server_ts', () => {
    const signed = signPdu(fresh, '5', 'example.org', key);
    const expiring = () => ({ key: key.publicKeyBase64, validUntilTs: message.origin_server_ts - 1 });
    expect(verifyPduSignatures(signed, '5', expiring)).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(verifyPduSignatures(signed, '4', expiring).ok).toBe(true);
  });

  it('requires the signature of the sender server', () => {
    const signedByOther = signPdu(fresh, '10', 'other.org', other);
    expect(verifyPduSignatures(signedByOther, '10', lookup)).toMatchObject({ ok: false, serverName: 'example.org', reason: 'missing-signature' });
  });

  it('signatures made by signJson over the redacted event match signPdu', () => {
    const signed = signPdu(fresh, '10', 'example.org', key);
    const { unsigned: _u, signatures: _s, ...rest } = signed;
    const redacted = { ...rest, content: {} };
    expect(signJson(redacted, 'example.org', key).signatures['example.org']).toEqual(signed.signatures['example.org']);
  });
});

describe('requiredSigners', () => {
  it('is the sender server, plus the event ID server in v1–v2', () => {
    expect(requiredSigners(message, '10')).toEqual(['example.org']);
    const v1 = { ...message, event_id: '$x:elsewhere.org' };
    expect(requiredSigners(v1, '1')).toEqual(['example.org', 'elsewhere.org']);
    expect(requiredSigners({ ...message, event_id: '$x:example.org' }, '2')).toEqual(['example.org']);
    expect(requiredSigners(v1, '3')).toEqual(['example.org']);
  });

  it('does not require the sender server for a third-party invite', () => {
    const invite = {
      ...message,
      type: 'm.room.member',
      state_key: '@carol:third.org',
      content: { membership: 'invite', third_party_invite: { display_name: 'c', signed: {} } },
    } as unknown as Pdu;
    expect(requiredSigners(invite, '10')).toEqual([]);
    expect(requiredSigners({ ...invite, event_id: '$i:third.org' }, '1')).toEqual(['third.org']);
    // A plain invite still needs the sender's server.
    expect(requiredSigners({ ...invite, content: { membership: 'invite' } }, '10')).toEqual(['example.org']);
  });

  it('adds the server of join_authorised_via_users_server from v8', () => {
    const join = {
      ...message,
      type: 'm.room.member',
      sender: '@dave:joiner.org',
      state_key: '@dave:joiner.org',
      content: { membership: 'join', join_authorised_via_users_server: '@admin:resident.org' },
    } as unknown as Pdu;
    expect(requiredSigners(join, '8')).toEqual(['joiner.org', 'resident.org']);
    expect(requiredSigners(join, '12')).toEqual(['joiner.org', 'resident.org']);
    expect(requiredSigners(join, '7')).toEqual(['joiner.org']);
  });
});

describe('buildPdu', () => {
  const base = {
    room_id: '!room:example.org',
    sender: '@alice:example.org',
    type: 'm.room.message',
    content: { body: 'x' },
    origin_server_ts: 5,
    depth: 3,
  };

  it('v1–v2: [id, {sha256}] references and a generated event_id on the sender server', () => {
    const pdu = buildPdu({ ...base, prev_events: [{ event_id: '$p:example.org', sha256: 'aGFzaA' }], auth_events: [['$a:example.org', { sha256: 'YQ' }]] }, '1');
    expect(pdu.prev_events).toEqual([['$p:example.org', { sha256: 'aGFzaA' }]]);
    expect(pdu.auth_events).toEqual([['$a:example.org', { sha256: 'YQ' }]]);
    expect(pdu.event_id).toMatch(/^\$[A-Za-z0-9]{18}:example\.org$/);
    expect(buildPdu({ ...base, event_id: '$mine:example.org', prev_events: [], auth_events: [] }, '2').event_id).toBe('$mine:example.org');
    expect(() => buildPdu({ ...base, prev_events: ['$p:example.org'], auth_events: [] }, '1')).toThrow(/hash/);
  });

  it('v3+: string references, no event_id', () => {
    const pdu = buildPdu({ ...base, prev_events: ['$p', { event_id: '$q', sha256: 'x' }], auth_events: [['$a', { sha256: 'x' }]] }, '4');
    expect(pdu.prev_events).toEqual(['$p', '$q']);
    expect(pdu.auth_events).toEqual(['$a']);
    expect(pdu).not.toHaveProperty('event_id');
    expect(() => buildPdu({ ...base, event_id: '$x', prev_events: [], auth_events: [] }, '3')).toThrow();
  });

  it('puts redacts top-level before v11 and in content from v11', () => {
    const redaction = { ...base, type: 'm.room.redaction', content: { reason: 'spam' }, redacts: '$bad', prev_events: [], auth_events: [] };
    const v10 = buildPdu(redaction, '10');
    expect(v10.redacts).toBe('$bad');
    expect(v10.content).toEqual({ reason: 'spam' });
    const v11 = buildPdu(redaction, '11');
    expect(v11).not.toHaveProperty('redacts');
    expect(v11.content).toEqual({ reason: 'spam', redacts: '$bad' });
  });

  it('v12 create has no room_id; other events and older creates need one', () => {
    const create = { ...base, room_id: undefined, type: 'm.room.create', state_key: '', content: {}, prev_events: [], auth_events: [] };
    expect(buildPdu(create, '12')).not.toHaveProperty('room_id');
    expect(() => buildPdu({ ...create, room_id: '!x:y' }, '12')).toThrow(/room_id/);
    expect(() => buildPdu(create, '11')).toThrow(/room_id/);
    expect(() => buildPdu({ ...base, room_id: undefined, prev_events: [], auth_events: [] }, '12')).toThrow(/room_id/);
  });

  it('does not modify the given content and keeps state_key and unsigned', () => {
    const content = { membership: 'join' };
    const pdu = buildPdu({ ...base, type: 'm.room.member', state_key: '@alice:example.org', content, unsigned: { age: 1 }, prev_events: [], auth_events: [] }, '10');
    expect(pdu.content).not.toBe(content);
    expect(pdu.state_key).toBe('@alice:example.org');
    expect(pdu.unsigned).toEqual({ age: 1 });
  });
});
