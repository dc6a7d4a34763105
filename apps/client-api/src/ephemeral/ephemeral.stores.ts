import type { Bus } from '@atrium/bus';
import { ReceiptStore, TypingStore, type WakeSync } from '@atrium/ephemeral';
import { RoomStore, StreamAllocator } from '@atrium/rooms';
import { SharedPerStore, type DocumentStore } from '@atrium/storage';
import { AccountDataStore, SYNC_WAKE_SUBJECT } from '@atrium/user-data';

/**
 * The stores of typing, receipts and read markers in one client-api process,
 * over the platform's document store. Writes wake /sync over the bus (design
 * doc "Waking sync"), so a long-poll in another replica wakes too.
 *
 * Opened once per DocumentStore and shared: the /sync sections are
 * instantiated inside the sync module (sync-section-list.ts), which only sees
 * the platform's global providers, so they reach these stores through
 * `EphemeralStores.shared` rather than through this module's injector.
 */
export class EphemeralStores {
  private static readonly opened = new SharedPerStore<EphemeralStores>();

  private constructor(
    readonly typing: TypingStore,
    readonly receipts: ReceiptStore,
    /** m.fully_read lives in room account data (client-server-api "Fully read markers"). */
    readonly accountData: AccountDataStore,
    /** Read-only use: memberships (who may send, who is joined) and the acknowledged events. */
    readonly rooms: RoomStore,
  ) {}

  static shared(store: DocumentStore, bus: Bus): Promise<EphemeralStores> {
    return EphemeralStores.opened.get(store, () => EphemeralStores.open(store, bus));
  }

  private static async open(store: DocumentStore, bus: Bus): Promise<EphemeralStores> {
    const positions = await StreamAllocator.open(store);
    const wake: WakeSync = (message) => bus.notify(SYNC_WAKE_SUBJECT, message);
    return new EphemeralStores(
      await TypingStore.open(store, positions, wake),
      await ReceiptStore.open(store, positions, wake),
      await AccountDataStore.open(store, positions, wake),
      await RoomStore.open(store),
    );
  }
}
