import type { Bus } from '@atrium/bus';

/**
 * Devices deleted through client-api (device_management.yaml) reach
 * key-server, which owns the E2EE keys (ARCHITECTURE.md), on a durable bus
 * stream: the device's keys go and its user's device list changes, so other
 * clients stop encrypting for it (modules/end_to_end_encryption.md "Tracking
 * the device list for a user"). At-least-once: the consumer's work is
 * idempotent (deleting what is gone changes nothing; another device-list
 * position is harmless).
 */
export const DEVICE_EVENTS_STREAM = { name: 'ACCOUNT_DEVICES', subjects: ['accounts.devices.>'] };
export const DEVICE_DELETED_SUBJECT = 'accounts.devices.deleted';

export interface DeviceDeleted {
  user_id: string;
  device_id: string;
}

const ensured = new WeakSet<Bus>();

async function ensure(bus: Bus): Promise<void> {
  if (ensured.has(bus)) return;
  await bus.ensureStream(DEVICE_EVENTS_STREAM);
  ensured.add(bus);
}

/** Called after a device is deleted from the account store. */
export async function publishDeviceDeleted(bus: Bus, userId: string, deviceId: string): Promise<void> {
  await ensure(bus);
  await bus.publish<DeviceDeleted>(DEVICE_DELETED_SUBJECT, { user_id: userId, device_id: deviceId });
}

/** Consumes deletions (key-server). Returns the subscription. */
export async function consumeDeviceDeletions(bus: Bus, handler: (event: DeviceDeleted) => Promise<void>) {
  await ensure(bus);
  return bus.consume<DeviceDeleted>(DEVICE_EVENTS_STREAM.name, { durable: 'key-server-device-deletions', filterSubject: DEVICE_DELETED_SUBJECT }, async (message) => {
    const data = message.data;
    if (typeof data?.user_id !== 'string' || typeof data.device_id !== 'string') return; // malformed: nothing to do
    await handler(data);
  });
}
