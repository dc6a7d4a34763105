import { InProcessBus } from '@atrium/bus';
import { initTelemetry, type Telemetry } from '@atrium/telemetry';
import { SYNC_WAKE_SUBJECT, SyncNotifier, type SyncWake } from './sync-notifier';

describe('SyncNotifier', () => {
  let bus: InProcessBus;
  let telemetry: Telemetry;
  let notifier: SyncNotifier;

  beforeEach(async () => {
    bus = new InProcessBus();
    telemetry = initTelemetry({ serviceName: 'sync-notifier-spec', logLevel: 'silent' });
    notifier = new SyncNotifier(bus, telemetry);
    await notifier.onModuleInit();
  });

  afterEach(async () => {
    await notifier.onModuleDestroy();
    await bus.close();
    await telemetry.shutdown();
  });

  const wake = (data: SyncWake): Promise<void> => bus.notify(SYNC_WAKE_SUBJECT, data);

  it('wakes a request armed before its rooms are known on any room notification (none falls between arming and the first read)', async () => {
    const armed = notifier.arm('@a:example.org', null);
    await wake({ stream: 'events', position: 1, room_id: '!r:example.org' });
    expect(await armed.wait(1_000)).toBe(true);
    armed.cancel();
  });

  it('once the rooms are known, wakes only for those rooms and for notifications naming the user', async () => {
    const armed = notifier.arm('@a:example.org', null);
    armed.setRooms(new Set(['!mine:example.org']));
    await wake({ stream: 'events', position: 1, room_id: '!other:example.org' });
    expect(await armed.wait(50)).toBe(false);
    await wake({ stream: 'account_data', position: 2, user_ids: ['@a:example.org'] });
    expect(await armed.wait(1_000)).toBe(true);
    await wake({ stream: 'events', position: 3, room_id: '!mine:example.org' });
    expect(await armed.wait(1_000)).toBe(true);
    armed.cancel();
  });
});
