/**
 * What E2eeService hands to federation-outbound on OUTGOING_EDU_STREAM
 * (server-server-api "Device Management"): read back from the in-process
 * bus's durable stream, over a real SQLite store and account store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountStore } from '@atrium/accounts';
import { InProcessBus } from '@atrium/bus';
import { OUTGOING_EDU_STREAM, OUTGOING_EDU_SUBJECT, type OutgoingEdu } from '@atrium/federation-client';
import { generateSigningKey, signJson, type JsonObject } from '@atrium/matrix';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { E2eeService } from './e2ee-service';

const ALICE = '@alice:hs.test';

describe('E2eeService federation EDUs', () => {
  let dir: string;
  let store: DocumentStore;
  let bus: InProcessBus;
  let accounts: AccountStore;
  let service: E2eeService;
  let edus: OutgoingEdu[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-e2ee-edus-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    bus = new InProcessBus();
    accounts = await AccountStore.open(store);
    service = await E2eeService.shared(store, bus, accounts, 'hs.test');
    edus = [];
    await bus.ensureStream({ name: OUTGOING_EDU_STREAM, subjects: [OUTGOING_EDU_SUBJECT] });
    await bus.consume<OutgoingEdu>(OUTGOING_EDU_STREAM, { durable: 'test' }, async (m) => void edus.push(m.data));
  });

  afterEach(async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function settled(count: number): Promise<OutgoingEdu[]> {
    for (let i = 0; i < 100 && edus.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    return edus;
  }

  it('device keys, deletions, cross-signing keys and signatures of own keys go out; remote users never', async () => {
    await accounts.ensureDevice(ALICE, 'D', null, null);
    const deviceKey = generateSigningKey('D');
    const keys = signJson({ user_id: ALICE, device_id: 'D', algorithms: ['m.megolm.v1.aes-sha2'], keys: { 'ed25519:D': deviceKey.publicKeyBase64 } }, ALICE, deviceKey);
    await service.upload(ALICE, 'D', { device_keys: keys });
    expect(await settled(1)).toEqual([{ edu_type: 'm.device_list_update', content: { user_id: ALICE, device_id: 'D', keys }, user_id: ALICE }]);

    // Cross-signing: the master and self-signing keys (never the user-signing key).
    const master = generateSigningKey('m');
    const ssk = generateSigningKey('s');
    const usk = generateSigningKey('u');
    const masterKey = { user_id: ALICE, usage: ['master'], keys: { [`ed25519:${master.publicKeyBase64}`]: master.publicKeyBase64 } };
    const masterSigner = { keyId: `ed25519:${master.publicKeyBase64}`, privateKey: master.privateKey };
    const selfSigning = signJson({ user_id: ALICE, usage: ['self_signing'], keys: { [`ed25519:${ssk.publicKeyBase64}`]: ssk.publicKeyBase64 } }, ALICE, masterSigner);
    const userSigning = signJson({ user_id: ALICE, usage: ['user_signing'], keys: { [`ed25519:${usk.publicKeyBase64}`]: usk.publicKeyBase64 } }, ALICE, masterSigner);
    await service.uploadCrossSigning(ALICE, { master_key: masterKey, self_signing_key: selfSigning, user_signing_key: userSigning }, async () => undefined);
    const signingUpdate = (await settled(2))[1];
    expect(signingUpdate).toEqual({ edu_type: 'm.signing_key_update', content: { user_id: ALICE, master_key: masterKey, self_signing_key: selfSigning }, user_id: ALICE });

    // The device signed by the self-signing key: its keys go out again, with that signature.
    const signedDevice = signJson({ ...keys }, ALICE, { keyId: `ed25519:${ssk.publicKeyBase64}`, privateKey: ssk.privateKey });
    const result = await service.uploadSignatures(ALICE, { [ALICE]: { D: signedDevice as unknown as JsonObject } });
    expect(result.failures).toEqual({});
    const deviceUpdate = (await settled(3))[2];
    expect(deviceUpdate.edu_type).toBe('m.device_list_update');
    const sent = deviceUpdate.content['keys'] as { signatures: Record<string, Record<string, string>>; unsigned?: unknown };
    expect(Object.keys(sent.signatures[ALICE]).sort()).toEqual(['ed25519:D', `ed25519:${ssk.publicKeyBase64}`].sort());
    expect(sent.unsigned).toBeUndefined();

    await service.deviceDeleted(ALICE, 'D');
    expect((await settled(4))[3]).toEqual({ edu_type: 'm.device_list_update', content: { user_id: ALICE, device_id: 'D', deleted: true }, user_id: ALICE });

    // A remote user's deletion (as key-server would see for a cached list) is not federated on.
    await service.deviceDeleted('@bob:other.test', 'X');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(edus).toHaveLength(4);
  });
});
