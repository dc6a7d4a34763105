/**
 * Issue 6's end-to-end encryption scenarios across two real Atrium servers
 * federating over TLS on 127.0.0.1 (e2e/support/e2ee-scenarios.ts has the
 * scenarios; e2e/e2ee runs them on one server). Keys travel as
 * /user/keys/query, /user/keys/claim, /user/devices, m.device_list_update and
 * m.direct_to_device (server-server-api "End-to-End Encryption", "Device
 * Management", "Send-to-device messaging").
 */
import { createTestCa } from '@atrium/test-servers';
import { E2eeWorld, deviceAddedLater, leaverGetsNoNewKeys, newDeviceRestoresBackup, twoUsersTwoDevicesEach, type Home } from '../support/e2ee-scenarios';
import { REGISTER_BURST_ENV } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

/** Each scenario logs in several devices per user: the default login limit (burst 5) would answer 429. */
const SCENARIO_ENV = { ...REGISTER_BURST_ENV, ATRIUM_RATE_LIMITS__LOGIN__BURST: '100', ATRIUM_RATE_LIMITS__LOGIN__PER_SECOND: '10' };
const modes = (process.env.ATRIUM_FEDERATION_MODES ?? 'embedded').split(',').map((m) => m.trim()) as Mode[];

describe.each(modes)('e2ee scenarios between two Atrium servers, matrix-js-sdk Rust crypto (%s mode)', (mode) => {
  let a: TestServer;
  let b: TestServer;
  let homeA: Home;
  let homeB: Home;
  const world = new E2eeWorld();

  beforeAll(async () => {
    const options = { federationTls: createTestCa(), env: SCENARIO_ENV };
    [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
    homeA = { baseUrl: a.baseUrl, serverName: a.serverName };
    homeB = { baseUrl: b.baseUrl, serverName: b.serverName };
  }, 300_000);

  afterAll(async () => {
    world.stopAll();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('(a) alice on A and bob on B, two devices each: every device decrypts every other device\'s message', () => twoUsersTwoDevicesEach(world, homeA, homeB));
  it('(b) carol on B: a new device restores from the key backup, after cross-signing trust, the room key dave on A sent', () => newDeviceRestoresBackup(world, homeB, homeA));
  it('(c) a device of alice on A added later is seen by bob on B and decrypts new messages', () => deviceAddedLater(world, homeA, homeB));
  it('(d) carol on B who left gets no new room keys from alice on A', () => leaverGetsNoNewKeys(world, homeA, homeB));
});
