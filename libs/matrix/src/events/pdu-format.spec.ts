import { generateSigningKey } from '../signing';
import { getRoomVersion, type RoomVersion, type RoomVersionId } from '../room-versions';
import { buildPdu } from './build-pdu';
import { signPdu } from './event-signing';
import { checkPduFormat, MAX_PDU_BYTES } from './pdu-format';
import type { JsonObject } from './pdu';

const key = generateSigningKey('f1');
const v = (id: string): RoomVersion => getRoomVersion(id)!;

function pdu(version: RoomVersionId, extra: Partial<Parameters<typeof buildPdu>[0]> = {}): JsonObject {
  const explicit = v(version).eventIdFormat === 'explicit';
  const built = buildPdu(
    {
      room_id: '!r:remote.test',
      sender: '@a:remote.test',
      type: 'm.room.message',
      content: { body: 'hi' },
      origin_server_ts: 1,
      depth: 3,
      prev_events: [explicit ? { event_id: '$p:remote.test', sha256: 'abc' } : '$prev'],
      auth_events: [explicit ? { event_id: '$c:remote.test', sha256: 'abc' } : '$create'],
      ...extra,
    },
    version,
  );
  return signPdu(built, version, 'remote.test', key) as unknown as JsonObject;
}

describe('checkPduFormat (checks on receipt, step 1)', () => {
  it('accepts well-formed PDUs of every room version', () => {
    for (const id of ['1', '2', '3', '4', '6', '10', '11', '12'] as const) expect(checkPduFormat(pdu(id), v(id))).toMatchObject({ ok: true });
  });

  it('refuses references in the wrong format for the version', () => {
    const v10 = pdu('10');
    expect(checkPduFormat({ ...v10, prev_events: [['$x:y', { sha256: 'a' }]] }, v('10'))).toMatchObject({ ok: false, reason: expect.stringMatching(/prev_events/) });
    const v1 = pdu('1');
    expect(checkPduFormat({ ...v1, auth_events: ['$x'] }, v('1'))).toMatchObject({ ok: false, reason: expect.stringMatching(/auth_events/) });
    const { event_id: _omit, ...noId } = v1;
    expect(checkPduFormat(noId, v('1'))).toMatchObject({ ok: false, reason: expect.stringMatching(/event_id/) });
  });

  it('refuses missing or mistyped required keys', () => {
    const good = pdu('10');
    for (const [field, value] of [
      ['type', 1],
      ['sender', 'nobody'],
      ['room_id', undefined],
      ['content', []],
      ['origin_server_ts', 1.5],
      ['depth', -1],
      ['hashes', { sha256: 1 }],
      ['signatures', { 'remote.test': { 'ed25519:f1': 5 } }],
      ['state_key', 7],
      ['unsigned', 'x'],
    ] as const) {
      const bad: Record<string, unknown> = { ...good, [field]: value };
      if (value === undefined) delete bad[field];
      expect(checkPduFormat(bad, v('10'))).toMatchObject({ ok: false });
    }
    expect(checkPduFormat('x', v('10'))).toMatchObject({ ok: false });
  });

  it('needs room_id except on a v12 create event, which must not carry one', () => {
    const create = pdu('12', { room_id: undefined, type: 'm.room.create', state_key: '', content: {}, prev_events: [], auth_events: [] });
    expect(checkPduFormat(create, v('12'))).toMatchObject({ ok: true });
    expect(checkPduFormat({ ...create, room_id: '!r:x' }, v('12'))).toMatchObject({ ok: false });
  });

  it('applies the size limits and (v6+) canonical JSON number rules', () => {
    expect(checkPduFormat(pdu('10', { type: 'x'.repeat(256) }), v('10'))).toMatchObject({ ok: false, reason: expect.stringMatching(/type/) });
    expect(checkPduFormat(pdu('10', { state_key: 'x'.repeat(256) }), v('10'))).toMatchObject({ ok: false, reason: expect.stringMatching(/state_key/) });
    expect(checkPduFormat(pdu('10', { content: { body: 'x'.repeat(MAX_PDU_BYTES) } }), v('10'))).toMatchObject({ ok: false, reason: expect.stringMatching(/larger/) });
    const floaty = { ...pdu('10'), content: { n: 1.5 } };
    expect(checkPduFormat(floaty, v('10'))).toMatchObject({ ok: false, reason: expect.stringMatching(/canonical/) });
    expect(checkPduFormat({ ...pdu('5'), content: { n: 1.5 } }, v('5'))).toMatchObject({ ok: true });
  });

  it('needs a top-level redacts on redactions before v11', () => {
    expect(checkPduFormat(pdu('10', { type: 'm.room.redaction', content: {} }), v('10'))).toMatchObject({ ok: false });
    expect(checkPduFormat(pdu('10', { type: 'm.room.redaction', content: {}, redacts: '$x' }), v('10'))).toMatchObject({ ok: true });
    expect(checkPduFormat(pdu('11', { type: 'm.room.redaction', content: { redacts: '$x' } }), v('11'))).toMatchObject({ ok: true });
  });
});
