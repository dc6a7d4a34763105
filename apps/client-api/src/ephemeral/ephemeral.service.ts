import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { MAIN_THREAD, threadOf, type ReceiptType, type RelatedEvent } from '@atrium/ephemeral';
import { publishOutgoingEdu } from '@atrium/federation-client';
import { Errors } from '@atrium/http';
import { domainOfId } from '@atrium/matrix';
import { BUS, CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import { eventOf, type EventRecord } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { EphemeralStores } from './ephemeral.stores';

/** How often each client-api process writes the stops of typing states past their timeout or of members who left. */
export const TYPING_EXPIRY_INTERVAL_MS = 1_000;

/** The account data type of the fully read marker (client-server-api "Fully read markers"). */
export const FULLY_READ = 'm.fully_read';

/**
 * Typing, receipts and read markers for the endpoints (client-server-api
 * "Typing Notifications", "Receipts", "Read and unread markers"), and the
 * periodic expiry of typing states.
 */
@Injectable()
export class EphemeralService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('EphemeralService');
  private timer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  private stores(): Promise<EphemeralStores> {
    return EphemeralStores.shared(this.store, this.bus);
  }

  onModuleInit(): void {
    this.timer = setInterval(() => void this.sweep(), TYPING_EXPIRY_INTERVAL_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /**
   * One pass: writes the stops of typing states past their timeout, and of
   * typing users no longer joined (a member who leaves while typing is no
   * longer typing in the room; the stop makes /sync send the room's list
   * again). A pass still running (slow storage) is not overlapped.
   */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const stores = await this.stores();
      // A local user's typing that timed out: the servers in the room hear the stop too, rather than
      // showing the user typing until their own timeout (remote users' states are their servers' to end).
      await stores.typing.expire(async (record) => {
        if (domainOfId(record.user_id) === this.config.server_name) {
          await this.federate({ edu_type: 'm.typing', content: { room_id: record.room_id, user_id: record.user_id, typing: false }, room_id: record.room_id });
        }
      });
      for (const state of await stores.typing.active()) {
        if ((await stores.rooms.getMembership(state.room_id, state.user_id))?.membership !== 'join') {
          await stores.typing.setTyping(state.room_id, state.user_id, false);
        }
      }
    } catch (err) {
      this.logger.warn(`typing expiry failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.sweeping = false;
    }
  }

  /** PUT /rooms/{roomId}/typing/{userId}, after the caller checked the body and the user's membership. */
  async setTyping(userId: string, roomId: string, typing: boolean, timeoutMs: number): Promise<void> {
    await (await this.stores()).typing.setTyping(roomId, userId, typing, timeoutMs);
    // server-server-api "Typing Notifications": the m.typing EDU goes to the servers in the room. Sent on every
    // call (renewals too), as receiving servers time a remote user's typing out on their own.
    await this.federate({ edu_type: 'm.typing', content: { room_id: roomId, user_id: userId, typing }, room_id: roomId });
  }

  /** Hands an EDU to federation-outbound; a bus failure is logged, not the client's error (the local write stands). */
  private async federate(edu: Parameters<typeof publishOutgoingEdu>[1]): Promise<void> {
    try {
      await publishOutgoingEdu(this.bus, edu);
    } catch (err) {
      this.logger.warn(`${edu.edu_type} not handed to federation: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * The event a receipt or marker points at: it "MUST belong to the room"
   * (read_markers.yaml). Unknown, or in another room: 404 M_NOT_FOUND, as for
   * other endpoints naming an event the user cannot reach.
   */
  async requireEvent(roomId: string, eventId: string): Promise<EventRecord> {
    const event = await (await this.stores()).rooms.getEvent(eventId);
    if (!event || event.room_id !== roomId) throw Errors.notFound(`Event ${eventId} not found in room ${roomId}`);
    return event;
  }

  /**
   * A receipt (receipts.yaml): the threaded receipt's event must be related
   * to its `thread_id` ("The `event_id` is not related to the `thread_id`" is
   * a 400): `main` takes events of the main timeline, a thread root's ID takes
   * the root and the events of its thread.
   */
  async putReceipt(userId: string, roomId: string, type: ReceiptType, event: EventRecord, threadId: string | null): Promise<void> {
    const stores = await this.stores();
    if (threadId !== null && threadId !== event._id) {
      const load = async (id: string): Promise<RelatedEvent | null> => {
        const parent = await stores.rooms.getEvent(id);
        return parent && parent.room_id === roomId ? eventOf(parent) : null;
      };
      const thread = await threadOf(eventOf(event), load);
      if (thread !== threadId) {
        throw Errors.invalidParam(threadId === MAIN_THREAD ? `${event._id} is in a thread, not the main timeline` : `${event._id} is not in thread ${threadId}`);
      }
    }
    const position = await stores.receipts.put({ roomId, userId, type, threadId, eventId: event._id, eventStream: event.stream });
    // server-server-api "Receipts": public read receipts go to the room's servers ("m.read.private" never leaves).
    if (position !== null && type === 'm.read') {
      const data: Record<string, string | number> = { ts: Date.now() };
      if (threadId !== null) data['thread_id'] = threadId;
      await this.federate({ edu_type: 'm.receipt', content: { [roomId]: { 'm.read': { [userId]: { event_ids: [event._id], data } } } }, room_id: roomId });
    }
  }

  /**
   * Moves the m.fully_read room account data to `event` ("Fully read
   * markers"; the server sends the updated account data event through /sync,
   * which the account data store's write does). Like receipts it only moves
   * forward: a marker for an older event than the stored one is ignored.
   */
  async setFullyRead(userId: string, roomId: string, event: EventRecord): Promise<void> {
    const stores = await this.stores();
    const current = await stores.accountData.get(userId, roomId, FULLY_READ);
    const currentId = current?.event_id;
    if (typeof currentId === 'string') {
      if (currentId === event._id) return;
      const previous = await stores.rooms.getEvent(currentId);
      if (previous && previous.room_id === roomId && previous.stream > event.stream) return;
    }
    await stores.accountData.set(userId, roomId, FULLY_READ, { event_id: event._id });
  }
}
