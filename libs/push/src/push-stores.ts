import type { Bus } from '@atrium/bus';
import { ReceiptStore } from '@atrium/ephemeral';
import { RoomStore, StreamAllocator } from '@atrium/rooms';
import { SharedPerStore, type DocumentStore } from '@atrium/storage';
import { AccountDataStore, SYNC_WAKE_SUBJECT, USER_DATA_STREAMS, type WakeSync } from '@atrium/user-data';
import { NotificationStore } from './notification-store';
import { PushEvaluator } from './push-evaluator';
import { CachedPushRules, PushRulesStore } from './push-rules-store';
import { PusherStore } from './pusher-store';
import { UnreadCounter } from './unread-counter';

/**
 * Everything push needs over one document store, opened once per store and
 * shared (the client-api endpoints, its /sync section, and the push gateway
 * in the embedded mode all use the same instances). Other libraries are used
 * through their exported stores: account data (user-data), receipts
 * (ephemeral), room events and state (rooms), read only except for the
 * `m.push_rules` account data.
 */
export class PushStores {
  private static readonly opened = new SharedPerStore<PushStores>();

  private constructor(
    readonly rules: PushRulesStore,
    readonly notifications: NotificationStore,
    readonly pushers: PusherStore,
    readonly evaluator: PushEvaluator,
    readonly counter: UnreadCounter,
    readonly rooms: RoomStore,
    readonly receipts: ReceiptStore,
    private readonly store: DocumentStore,
    private readonly positions: StreamAllocator,
  ) {}

  /** A rules cache of its own for one long-lived reader (the push gateway); see CachedPushRules. */
  cachedRules(): CachedPushRules {
    const stream = USER_DATA_STREAMS.accountData;
    return new CachedPushRules(this.rules, {
      highest: () => this.store.currentSequence(StreamAllocator.counter(stream)),
      safe: () => this.positions.safePosition(stream),
    });
  }

  static shared(store: DocumentStore, bus: Bus): Promise<PushStores> {
    return PushStores.opened.get(store, () => PushStores.open(store, bus));
  }

  static async open(store: DocumentStore, bus: Bus): Promise<PushStores> {
    const positions = await StreamAllocator.open(store);
    const wake: WakeSync = (message) => bus.notify(SYNC_WAKE_SUBJECT, message);
    const rooms = await RoomStore.open(store);
    const receipts = await ReceiptStore.open(store, positions, wake);
    const rules = new PushRulesStore(await AccountDataStore.open(store, positions, wake));
    const notifications = await NotificationStore.open(store);
    const evaluator = new PushEvaluator(rooms, rules);
    return new PushStores(rules, notifications, await PusherStore.open(store), evaluator, new UnreadCounter(rooms, receipts, notifications, evaluator), rooms, receipts, store, positions);
  }
}
