import { Logger } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import { ReceiptStore, TypingStore } from '@atrium/ephemeral';
import type { IncomingEdu, IncomingEduHandler } from '@atrium/federation-client';
import { domainOfId, isValidUserId, type JsonObject } from '@atrium/matrix';
import { RoomStore, StreamAllocator, SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { PresenceStore, PRESENCE_STATES, ToDeviceStore, type PresenceState, type ToDeviceDelivery } from '@atrium/user-data';

/**
 * How long a remote user's typing lasts without a new m.typing EDU. The
 * EDU has no timeout ("Typing Notifications"); senders repeat it while the
 * user types (Atrium on every client call, clients every 20–30 s), and a
 * stop may be lost with its server, so the receiver times it out itself.
 */
export const REMOTE_TYPING_TIMEOUT_MS = 60_000;

/** The sender device recorded for to-device messages that came over federation (there is no device on this server). */
export const FEDERATION_SENDER_DEVICE = 'federation';

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Device lists and signing keys: handed to the E2EE owner when it is wired (see IncomingEdus.setDeviceListHandler). */
export type EduRoute = (edu: IncomingEdu) => Promise<void>;

/**
 * Routes the EDUs of received transactions to their owners' storage, so
 * local clients see them through /sync (server-server-api "EDUs"; the
 * /send controller calls `handle` once per EDU after the origin was
 * authenticated). Each EDU is checked against its origin: a server speaks
 * only for its own users ("the sending server must be the server of the
 * user"), and for rooms and users a local user shares with them. Bad
 * content is logged and dropped: "EDUs have no per-item result".
 */
export class IncomingEdus implements IncomingEduHandler {
  private readonly logger = new Logger('IncomingEdus');
  private readonly routes = new Map<string, EduRoute>();

  private constructor(
    private readonly serverName: string,
    private readonly rooms: RoomStore,
    private readonly typing: TypingStore,
    private readonly receipts: ReceiptStore,
    private readonly presence: PresenceStore,
    private readonly toDevice: ToDeviceStore,
    private readonly accounts: AccountStore,
  ) {
    this.routes.set('m.typing', (edu) => this.onTyping(edu));
    this.routes.set('m.receipt', (edu) => this.onReceipt(edu));
    this.routes.set('m.presence', (edu) => this.onPresence(edu));
    this.routes.set('m.direct_to_device', (edu) => this.onToDevice(edu));
  }

  static async open(store: DocumentStore, bus: Bus, accounts: AccountStore, serverName: string): Promise<IncomingEdus> {
    const positions = await StreamAllocator.open(store);
    const wake = (message: SyncWake): Promise<void> => bus.notify(SYNC_WAKE_SUBJECT, message);
    return new IncomingEdus(
      serverName,
      await RoomStore.open(store),
      await TypingStore.open(store, positions, wake),
      await ReceiptStore.open(store, positions, wake),
      await PresenceStore.open(store, positions, wake),
      await ToDeviceStore.open(store, positions, wake),
      accounts,
    );
  }

  /** Adds (or replaces) the route of an EDU type owned elsewhere (m.device_list_update, m.signing_key_update). */
  setRoute(eduType: string, route: EduRoute): void {
    this.routes.set(eduType, route);
  }

  async handle(edu: IncomingEdu): Promise<void> {
    const route = this.routes.get(edu.edu_type);
    // "Receiving servers … should ignore EDUs they do not understand" (unknown types are dropped quietly).
    if (!route) return;
    try {
      await route(edu);
    } catch (err) {
      this.logger.warn(`${edu.edu_type} from ${edu.origin} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private drop(edu: IncomingEdu, why: string): void {
    this.logger.warn(`${edu.edu_type} from ${edu.origin} dropped: ${why}`);
  }

  /** A user ID of the origin's server. */
  private ofOrigin(userId: unknown, origin: string): userId is string {
    return typeof userId === 'string' && isValidUserId(userId, 'historical') && domainOfId(userId) === origin;
  }

  private async isJoined(roomId: string, userId: string): Promise<boolean> {
    return (await this.rooms.getMembership(roomId, userId))?.membership === 'join';
  }

  /** Local users sharing a joined room with `userId` (who may see their presence). */
  private async localAudience(userId: string): Promise<string[]> {
    const audience = new Set<string>();
    for (const membership of await this.rooms.roomsOfUser(userId, ['join'])) {
      for (const member of await this.rooms.joinedUsers(membership.room_id)) if (domainOfId(member) === this.serverName) audience.add(member);
    }
    return [...audience];
  }

  /** m.typing: `{room_id, user_id, typing}` of a user of the origin joined to the room. */
  private async onTyping(edu: IncomingEdu): Promise<void> {
    const { room_id: roomId, user_id: userId, typing } = edu.content;
    if (typeof roomId !== 'string' || typeof typing !== 'boolean' || !this.ofOrigin(userId, edu.origin)) return this.drop(edu, 'bad content or user of another server');
    if (!(await this.isJoined(roomId, userId))) return this.drop(edu, `${userId} is not joined to ${roomId}`);
    await this.typing.setTyping(roomId, userId, typing, REMOTE_TYPING_TIMEOUT_MS);
  }

  /**
   * m.receipt: room ID → receipt type → user ID → `{event_ids, data: {ts, thread_id?}}`.
   * Only `m.read` is federated (m.read.private never leaves its server);
   * the receipt is stored for the last event given that this server knows
   * in the room, for a user of the origin joined to it.
   */
  private async onReceipt(edu: IncomingEdu): Promise<void> {
    for (const [roomId, byType] of Object.entries(edu.content)) {
      if (!isObject(byType)) continue;
      const byUser = byType['m.read'];
      if (!isObject(byUser)) continue;
      for (const [userId, receipt] of Object.entries(byUser)) {
        if (!this.ofOrigin(userId, edu.origin) || !isObject(receipt) || !Array.isArray(receipt['event_ids'])) {
          this.drop(edu, `bad receipt of ${userId} in ${roomId}`);
          continue;
        }
        if (!(await this.isJoined(roomId, userId))) {
          this.drop(edu, `${userId} is not joined to ${roomId}`);
          continue;
        }
        const data = isObject(receipt['data']) ? receipt['data'] : {};
        const threadId = typeof data['thread_id'] === 'string' && data['thread_id'] !== '' ? data['thread_id'] : null;
        const eventIds = receipt['event_ids'].filter((e): e is string => typeof e === 'string');
        const known = (await this.rooms.getEvents(eventIds)).filter((e) => e.room_id === roomId && e.stream > 0);
        if (known.length === 0) {
          this.drop(edu, `receipt of ${userId} for events unknown here`);
          continue;
        }
        const latest = known.reduce((a, b) => (b.stream > a.stream ? b : a));
        const ts = typeof data['ts'] === 'number' && Number.isSafeInteger(data['ts']) && data['ts'] > 0 ? data['ts'] : undefined;
        await this.receipts.put({ roomId, userId, type: 'm.read', threadId, eventId: latest._id, eventStream: latest.stream, ts });
      }
    }
  }

  /** m.presence: `{push: [{user_id, presence, status_msg?, last_active_ago, currently_active?}]}`. */
  private async onPresence(edu: IncomingEdu): Promise<void> {
    const push = edu.content['push'];
    if (!Array.isArray(push)) return this.drop(edu, 'push is not an array');
    for (const update of push) {
      if (!isObject(update) || !this.ofOrigin(update['user_id'], edu.origin)) {
        this.drop(edu, 'bad update or user of another server');
        continue;
      }
      const userId = update['user_id'] as string;
      const presence = update['presence'];
      const ago = update['last_active_ago'];
      if (typeof presence !== 'string' || !PRESENCE_STATES.includes(presence as PresenceState) || typeof ago !== 'number' || !Number.isFinite(ago) || ago < 0) {
        this.drop(edu, `bad presence of ${userId}`);
        continue;
      }
      const audience = await this.localAudience(userId);
      // Presence of users no local user shares a room with is of no use here (and would let any server fill the table).
      if (audience.length === 0) continue;
      const statusMsg = typeof update['status_msg'] === 'string' ? update['status_msg'] : null;
      await this.presence.putRemote(userId, { presence: presence as PresenceState, status_msg: statusMsg, last_active_ts: Date.now() - ago }, audience);
    }
  }

  /**
   * m.direct_to_device: `{sender, type, message_id, messages: {user: {device | "*": content}}}`.
   * Delivered to the local recipients' devices ("*": all of them); the
   * message_id is the transaction key, so a repeated EDU is stored once.
   */
  private async onToDevice(edu: IncomingEdu): Promise<void> {
    const { sender, type, message_id: messageId, messages } = edu.content;
    if (!this.ofOrigin(sender, edu.origin) || typeof type !== 'string' || typeof messageId !== 'string' || messageId === '' || !isObject(messages)) {
      return this.drop(edu, 'bad content or sender of another server');
    }
    const deliveries: ToDeviceDelivery[] = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (domainOfId(userId) !== this.serverName || !isObject(byDevice)) continue;
      const known = new Set((await this.accounts.listDevices(userId)).map((d) => d.device_id));
      const chosen = new Map<string, JsonObject>();
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (!isObject(content)) continue;
        const targets = deviceId === '*' ? [...known] : known.has(deviceId) ? [deviceId] : [];
        for (const target of targets) if (deviceId !== '*' || !chosen.has(target)) chosen.set(target, content);
      }
      for (const [deviceId, content] of chosen) deliveries.push({ userId, deviceId, content });
    }
    if (deliveries.length === 0) return;
    await this.toDevice.send(sender, FEDERATION_SENDER_DEVICE, `${edu.origin}\n${messageId}`, type, deliveries);
  }
}
