/**
 * Third-party invites: m.room.third_party_invite (needs the invite level) and
 * m.room.member invites carrying `third_party_invite`, whose `signed` block
 * must be signed by a key the m.room.third_party_invite event published.
 * Signatures are made with node:crypto over canonical JSON written out by
 * hand here, so the check is tested against an independent encoder.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { JsonObject } from '../events/pdu';
import { ALL_VERSIONS, createRoom, user, verdict, type TestRoom } from './testing';

function keyPair(): { publicKey: string; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'jwk' }).x as string;
  // Unpadded standard base64, as identity servers publish keys.
  return { publicKey: Buffer.from(raw, 'base64url').toString('base64').replace(/=+$/, ''), privateKey };
}

/** The `signed` block for `mxid`, signed by `privateKey` (canonical JSON: sorted keys, no spaces). */
function signedBlock(mxid: string, token: string, privateKey: KeyObject, sender = user('alice')): JsonObject {
  const canonical = `{"mxid":${JSON.stringify(mxid)},"sender":${JSON.stringify(sender)},"token":${JSON.stringify(token)}}`;
  const signature = sign(null, Buffer.from(canonical, 'utf8'), privateKey).toString('base64').replace(/=+$/, '');
  return { mxid, sender, token, signatures: { 'id.example.org': { 'ed25519:0': signature } } };
}

function inviteRoom(id: (typeof ALL_VERSIONS)[number], publicKeys: { single?: string; list?: string[] }): TestRoom {
  const room = createRoom(id);
  const content: JsonObject = { display_name: 'b...@example.com', key_validity_url: 'https://id.example.org/isvalid' };
  if (publicKeys.single) content['public_key'] = publicKeys.single;
  if (publicKeys.list) content['public_keys'] = publicKeys.list.map((k) => ({ public_key: k }));
  room.must({ type: 'm.room.third_party_invite', sender: 'alice', stateKey: 'tok', content });
  return room;
}

const memberRule = (id: string): string => (['1', '2', '3', '4', '5', '12'].includes(id) ? '5' : '4');
const inviteRule = (id: string): string => `${memberRule(id)}.${Number(id) >= 8 ? 4 : 3}`;

describe('m.room.third_party_invite', () => {
  it.each(ALL_VERSIONS)('v%s: needs the invite level', (id) => {
    const room = createRoom(id, { powerLevels: { invite: 50 } });
    room.membership('bob', 'join');
    const draft = { type: 'm.room.third_party_invite', sender: 'bob', stateKey: 'tok', content: { public_key: 'AAAA' } };
    const thirdPartyRule = String(Number(memberRule(id)) + 2);
    expect(verdict(room.check(draft))).toBe(`deny ${thirdPartyRule}.1 m.room.third_party_invite/power`);
    expect(room.check({ ...draft, sender: 'alice' })).toEqual({ allowed: true });
  });
});

describe('m.room.member invite with third_party_invite', () => {
  it.each(ALL_VERSIONS)('v%s: a signature by the published key allows the invite; any other key does not', (id) => {
    const good = keyPair();
    const other = keyPair();
    const room = inviteRoom(id, { single: good.publicKey });
    const bob = user('bob');
    const ok = room.check(room.member('alice', 'invite', 'bob', { third_party_invite: { display_name: 'b...', signed: signedBlock(bob, 'tok', good.privateKey) } }));
    expect(ok).toEqual({ allowed: true });
    const forged = room.check(room.member('alice', 'invite', 'bob', { third_party_invite: { display_name: 'b...', signed: signedBlock(bob, 'tok', other.privateKey) } }));
    expect(verdict(forged)).toBe(`deny ${inviteRule(id)}.1.8 m.room.member/invite/third_party/signature`);
  });

  it.each(['1', '10', '12'] as const)('v%s: keys in public_keys count too; a tampered signed block fails', (id) => {
    const first = keyPair();
    const second = keyPair();
    const room = inviteRoom(id, { list: [first.publicKey, second.publicKey] });
    const signed = signedBlock(user('bob'), 'tok', second.privateKey);
    expect(room.check(room.member('alice', 'invite', 'bob', { third_party_invite: { signed } }))).toEqual({ allowed: true });
    // Changing the signed content (here, `sender`) breaks the signature.
    const tampered = { ...signed, sender: user('mallory') };
    expect(verdict(room.check(room.member('alice', 'invite', 'bob', { third_party_invite: { signed: tampered } })))).toBe(
      `deny ${inviteRule(id)}.1.8 m.room.member/invite/third_party/signature`,
    );
  });

  it.each(ALL_VERSIONS)('v%s: the structural checks, in order', (id) => {
    const key = keyPair();
    const room = inviteRoom(id, { single: key.publicKey });
    const r = inviteRule(id);
    const bob = user('bob');
    const invite = (tpi: JsonObject, sender = 'alice', target = 'bob') => room.check(room.member(sender, 'invite', target, { third_party_invite: tpi }));
    expect(verdict(invite({}))).toBe(`deny ${r}.1.2 m.room.member/invite/third_party/no-signed`);
    expect(verdict(invite({ signed: { mxid: bob } }))).toBe(`deny ${r}.1.3 m.room.member/invite/third_party/no-mxid-token`);
    expect(verdict(invite({ signed: signedBlock(user('carol'), 'tok', key.privateKey) }))).toBe(`deny ${r}.1.4 m.room.member/invite/third_party/mxid`);
    expect(verdict(invite({ signed: signedBlock(bob, 'other-token', key.privateKey) }))).toBe(`deny ${r}.1.5 m.room.member/invite/third_party/no-invite-event`);
    // Only the user who made the third-party invite may complete it.
    room.membership('carol', 'join');
    expect(verdict(invite({ signed: signedBlock(bob, 'tok', key.privateKey) }, 'carol'))).toBe(`deny ${r}.1.6 m.room.member/invite/third_party/sender`);
    // A banned target cannot be invited this way either.
    room.membership('alice', 'ban', 'bob');
    expect(verdict(invite({ signed: signedBlock(bob, 'tok', key.privateKey) }))).toBe(`deny ${r}.1.1 m.room.member/invite/third_party/banned`);
  });
});
