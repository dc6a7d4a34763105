/**
 * Interop: issue 6's end-to-end encryption scenarios (e2e/support/e2ee-scenarios.ts, also run
 * on one Atrium in e2e/e2ee and between two Atriums in e2e/federation) with one user on Atrium
 * and the other on a real Synapse, the room hosted on Atrium in one describe and on Synapse in
 * the other. Keys cross as /user/keys/query, /user/keys/claim, /user/devices,
 * m.device_list_update and m.direct_to_device (server-server-api "End-to-End Encryption",
 * "Device Management", "Send-to-device messaging"); key backup, cross-signing and secret
 * storage stay on the user's own server (client-server-api "Server-side key backups",
 * "Cross-signing", "Secret storage").
 */
import { E2eeWorld, deviceAddedLater, leaverGetsNoNewKeys, newDeviceRestoresBackup, twoUsersTwoDevicesEach, type Home } from '../support/e2ee-scenarios';
import { rawApi } from '../support/fixtures';
import { interopModes, useAtrium, useSynapse } from '../support/interop';

/** Each scenario logs in several devices per user: Atrium's default login limit (burst 5) would answer 429. */
const LOGIN_ENV = { ATRIUM_RATE_LIMITS__LOGIN__BURST: '100', ATRIUM_RATE_LIMITS__LOGIN__PER_SECOND: '10' };
/** A scenario waits up to 45 s per step, across federation. */
const SCENARIO_TIMEOUT_MS = 240_000;

describe.each(interopModes())('e2ee scenarios between Atrium (%s mode) and Synapse, matrix-js-sdk Rust crypto', (mode) => {
  const world = new E2eeWorld();
  // Declared before the servers' hooks: Jest (circus) runs afterAll hooks in declaration order,
  // so the clients stop syncing before either server goes away.
  afterAll(() => world.stopAll());
  const synapse = useSynapse();
  const atrium = useAtrium(mode, synapse, { env: LOGIN_ENV });
  let onAtrium: Home;
  let onSynapse: Home;

  beforeAll(() => {
    onAtrium = { baseUrl: atrium.server().baseUrl, serverName: atrium.server().serverName };
    const s = synapse.synapse();
    onSynapse = {
      baseUrl: s.clientUrl,
      serverName: s.serverName,
      // Synapse has no open registration here: the shared-secret admin API. The login it makes
      // is logged out again, so each scenario's devices are only the ones it logs in itself.
      async register(localpart, password) {
        const u = await s.registerUser(localpart, password);
        const out = await rawApi(s.clientUrl, u.accessToken, 'POST', '/logout', {});
        if (out.status !== 200) throw new Error(`logout of ${u.userId}'s registration device: ${out.status}`);
        return u.userId;
      },
    };
  });

  describe('the room on Atrium', () => {
    it('(a) alice on Atrium and bob on Synapse, two devices each: every device decrypts every other device\'s message', () => twoUsersTwoDevicesEach(world, onAtrium, onSynapse), SCENARIO_TIMEOUT_MS);
    it('(b) carol on Synapse: a new device restores from Synapse\'s key backup, after cross-signing trust, the room key dave on Atrium sent', () => newDeviceRestoresBackup(world, onSynapse, onAtrium), SCENARIO_TIMEOUT_MS);
    it('(c) a device of alice on Atrium added later is seen by bob on Synapse and decrypts new messages', () => deviceAddedLater(world, onAtrium, onSynapse), SCENARIO_TIMEOUT_MS);
    it('(d) carol on Synapse who left gets no new room keys from alice on Atrium', () => leaverGetsNoNewKeys(world, onAtrium, onSynapse), SCENARIO_TIMEOUT_MS);
  });

  describe('the room on Synapse', () => {
    it('(a) alice on Synapse and bob on Atrium, two devices each: every device decrypts every other device\'s message', () => twoUsersTwoDevicesEach(world, onSynapse, onAtrium), SCENARIO_TIMEOUT_MS);
    it('(b) carol on Atrium: a new device restores from Atrium\'s key backup, after cross-signing trust, the room key dave on Synapse sent', () => newDeviceRestoresBackup(world, onAtrium, onSynapse), SCENARIO_TIMEOUT_MS);
    it('(c) a device of alice on Synapse added later is seen by bob on Atrium and decrypts new messages', () => deviceAddedLater(world, onSynapse, onAtrium), SCENARIO_TIMEOUT_MS);
    it('(d) carol on Atrium who left gets no new room keys from alice on Synapse', () => leaverGetsNoNewKeys(world, onSynapse, onAtrium), SCENARIO_TIMEOUT_MS);
  });
});
