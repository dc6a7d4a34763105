import { buildPdu } from '../events/build-pdu';
import { redactedForHashing, toRoomEvent } from '../events/event-hashes';
import { signPdu } from '../events/event-signing';
import { getRoomVersion } from '../room-versions';
import { generateSigningKey } from '../signing/keys';
import { signJson } from '../signing/sign-json';
import { hasValidPolicySignature, needsPolicySignature, policyServerOf, POLICY_SERVER_KEY_ID } from './policy-server';

describe('Policy Servers (server-server-api "Policy Servers")', () => {
  it('reads m.room.policy content: a string via and public_keys.ed25519, else no Policy Server', () => {
    expect(policyServerOf({ via: 'ps.example', public_keys: { ed25519: 'abc' } })).toEqual({ via: 'ps.example', ed25519: 'abc' });
    expect(policyServerOf({ via: 'ps.example', public_keys: { ed25519: 'abc', curve: 'x' }, extra: 1 })).toEqual({ via: 'ps.example', ed25519: 'abc' });
    for (const bad of [undefined, null, {}, [], { via: 'ps.example' }, { via: 7, public_keys: { ed25519: 'abc' } }, { via: 'ps.example', public_keys: { ed25519: 5 } }, { via: 'ps.example', public_keys: [] }, { via: '', public_keys: { ed25519: 'a' } }]) {
      expect(policyServerOf(bad)).toBeNull();
    }
  });

  it('asks for a signature on every event but the m.room.policy state event with an empty state key', () => {
    expect(needsPolicySignature({ type: 'm.room.policy', state_key: '' })).toBe(false);
    expect(needsPolicySignature({ type: 'm.room.policy', state_key: 'x' })).toBe(true);
    expect(needsPolicySignature({ type: 'm.room.policy' })).toBe(true);
    expect(needsPolicySignature({ type: 'm.room.member', state_key: '@a:b' })).toBe(true);
    expect(needsPolicySignature({ type: 'm.room.message' })).toBe(true);
  });

  it('checks the signature of ed25519:policy_server over the redacted event, with the key from the room state', () => {
    const version = getRoomVersion('12')!;
    const origin = generateSigningKey('o1');
    const policyKey = generateSigningKey('policy_server');
    const other = generateSigningKey('policy_server');
    const pdu = signPdu(
      buildPdu({ room_id: '!r', sender: '@a:origin.test', type: 'm.room.message', content: { body: 'hi' }, origin_server_ts: 1, depth: 3, prev_events: [], auth_events: [] }, version),
      version,
      'origin.test',
      origin,
    );
    const policy = { via: 'ps.test', ed25519: policyKey.publicKeyBase64 };
    expect(hasValidPolicySignature(pdu, version, policy)).toBe(false);
    const psSig = (key: typeof policyKey) => signJson(redactedForHashing(pdu, version), 'ps.test', key).signatures['ps.test'][POLICY_SERVER_KEY_ID];
    const signed = { ...pdu, signatures: { ...pdu.signatures, 'ps.test': { [POLICY_SERVER_KEY_ID]: psSig(policyKey) } } };
    expect(hasValidPolicySignature(signed, version, policy)).toBe(true);
    // The room event form (event_id, room_id added) checks the same.
    expect(hasValidPolicySignature(toRoomEvent(signed, version), version, policy)).toBe(true);
    // Another key, or the right signature under another server name, does not count.
    expect(hasValidPolicySignature({ ...pdu, signatures: { ...pdu.signatures, 'ps.test': { [POLICY_SERVER_KEY_ID]: psSig(other) } } }, version, policy)).toBe(false);
    expect(hasValidPolicySignature(signed, version, { ...policy, via: 'elsewhere.test' })).toBe(false);
    // A content change the redaction keeps out still verifies (the signature covers the redacted form)...
    expect(hasValidPolicySignature({ ...signed, content: { body: 'changed' } }, version, policy)).toBe(true);
    // ...a change to what the redaction keeps does not.
    expect(hasValidPolicySignature({ ...signed, depth: 4 }, version, policy)).toBe(false);
  });
});
