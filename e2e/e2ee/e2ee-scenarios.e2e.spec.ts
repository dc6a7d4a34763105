/**
 * Issue 6's end-to-end encryption scenarios on one server, in both modes
 * (e2e/support/e2ee-scenarios.ts has the scenarios; e2e/federation has the
 * same across two servers): two users with two devices each; a new device
 * restoring the key backup after cross-signing trust; a device added later;
 * a user who left getting no new room keys.
 */
import { E2eeWorld, deviceAddedLater, leaverGetsNoNewKeys, newDeviceRestoresBackup, rehydratedDeviceDecrypts, twoUsersTwoDevicesEach, type Home } from '../support/e2ee-scenarios';
import { REGISTER_BURST_ENV } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

/** Each scenario logs in several devices per user: the default login limit (burst 5) would answer 429. */
const SCENARIO_ENV = { ...REGISTER_BURST_ENV, ATRIUM_RATE_LIMITS__LOGIN__BURST: '100', ATRIUM_RATE_LIMITS__LOGIN__PER_SECOND: '10' };
const modes: Mode[] = ['embedded', 'cluster'];

describe.each(modes)('e2ee scenarios with matrix-js-sdk Rust crypto (%s mode)', (mode) => {
  let server: TestServer;
  let home: Home;
  const world = new E2eeWorld();

  beforeAll(async () => {
    server = await startTestServer(mode, { env: SCENARIO_ENV });
    home = { baseUrl: server.baseUrl, serverName: server.serverName };
  });

  afterAll(async () => {
    world.stopAll();
    await server?.stop();
  });

  it('(a) two users with two devices each: every device decrypts every other device\'s message', () => twoUsersTwoDevicesEach(world, home, home));
  it('(b) a new device restores the key backup after cross-signing trust from secret storage', () => newDeviceRestoresBackup(world, home, home));
  it('(c) a device added later is seen through device lists and decrypts new messages', () => deviceAddedLater(world, home, home));
  it('(d) a user who left gets no new room keys', () => leaverGetsNoNewKeys(world, home, home));
  it('(e) MSC3814: a device dehydrated by the SDK receives a room key; a new login rehydrates it and decrypts', () => rehydratedDeviceDecrypts(world, home, home));
});
