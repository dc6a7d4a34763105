import { Inject, Injectable } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import { receiptContent } from '@atrium/ephemeral';
import { eventMatchesFilter } from '@atrium/matrix';
import { BUS, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import type { SyncSection, SyncSectionRequest, SyncSectionResult } from '../sync/sync-sections';
import { EphemeralStores } from './ephemeral.stores';

/**
 * The /sync sections of the `receipts` and `typing` streams (design doc
 * "Sync sections"), registered in sync/sync-section-list.ts.
 *
 * Both streams fill the same `rooms.join[roomId].ephemeral.events` list, and
 * /sync sets each key of a room from one section's result (a later section's
 * `ephemeral` would replace an earlier one's). So EphemeralSyncSection builds
 * the whole list from both streams (the request carries every stream's
 * `from` and `to`), and ReceiptsStreamSection only gives the `receipts`
 * stream its place in the token: its safe position becomes `to.receipts`.
 *
 * They depend on the platform's global providers only, as the sync module
 * instantiates them (see EphemeralStores.shared).
 */
@Injectable()
export class ReceiptsStreamSection implements SyncSection {
  readonly stream = 'receipts' as const;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  async currentPosition(): Promise<number> {
    return (await EphemeralStores.shared(this.store, this.bus)).receipts.safePosition();
  }

  /** The receipts themselves are built by EphemeralSyncSection (see above). */
  build(): Promise<SyncSectionResult> {
    return Promise.resolve({ hasUpdates: false });
  }
}

/**
 * The typing users still joined: a member who leaves while typing keeps a
 * typing state until its timeout, but is no longer "currently typing" in the
 * room (typing only counts for joined members, as the endpoint requires).
 */
async function joinedOnly(stores: EphemeralStores, roomId: string, userIds: readonly string[]): Promise<string[]> {
  const kept: string[] = [];
  for (const userId of userIds) if ((await stores.rooms.getMembership(roomId, userId))?.membership === 'join') kept.push(userId);
  return kept;
}

type EphemeralEvent = { type: 'm.typing'; content: { user_ids: string[] } } | { type: 'm.receipt'; content: Record<string, unknown> };

/**
 * Each joined room's `ephemeral` (sync.yaml JoinedRoom.ephemeral, filtered by
 * `filter.room.ephemeral`):
 * - `m.typing` ("Typing Notifications"): the room's whole list of typing
 *   users, sent when it changed since `since` (an empty list tells the
 *   client everyone stopped); an initial sync gets the rooms where someone
 *   types now.
 * - `m.receipt` ("Receipts"): one event per room batching the receipts
 *   written since `since` ("deltas which update existing mappings"); an
 *   initial or full-state sync gets the latest receipt of every user, type
 *   and thread. `m.read.private` only reaches its owner.
 */
@Injectable()
export class EphemeralSyncSection implements SyncSection {
  readonly stream = 'typing' as const;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  async currentPosition(): Promise<number> {
    return (await EphemeralStores.shared(this.store, this.bus)).typing.safePosition();
  }

  async build(request: SyncSectionRequest): Promise<SyncSectionResult> {
    const roomIds = request.joinedRoomIds;
    if (roomIds.length === 0) return { hasUpdates: false };
    const stores = await EphemeralStores.shared(this.store, this.bus);
    const full = request.initial || request.fullState;

    const typers = await stores.typing.typingIn(roomIds);
    const typingRooms = full ? new Set(typers.keys()) : await stores.typing.changedRooms(roomIds, request.from.typing, request.to.typing);
    const receipts = await stores.receipts.changes(roomIds, request.userId, full ? 0 : request.from.receipts, request.to.receipts);

    const filter = request.filter.room?.ephemeral;
    const rooms: Record<string, Record<string, unknown>> = {};
    for (const roomId of roomIds) {
      const events: EphemeralEvent[] = [];
      if (typingRooms.has(roomId)) {
        const userIds = await joinedOnly(stores, roomId, typers.get(roomId) ?? []);
        // An initial sync lists rooms where someone types; an incremental one also the rooms where everyone stopped.
        if (userIds.length > 0 || !full) events.push({ type: 'm.typing', content: { user_ids: userIds } });
      }
      const roomReceipts = receipts.get(roomId);
      if (roomReceipts && roomReceipts.length > 0) events.push({ type: 'm.receipt', content: receiptContent(roomReceipts) });
      const kept = events.filter((e) => eventMatchesFilter(filter, { type: e.type, room_id: roomId, content: e.content }));
      if (kept.length > 0) rooms[roomId] = { ephemeral: { events: kept } };
    }
    return { rooms, hasUpdates: Object.keys(rooms).length > 0 };
  }
}
