import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, type Requester } from '@atrium/http';
import type { PushAction } from '@atrium/matrix';
import { PushStores } from '@atrium/push';
import { toClientEvent, type ClientEvent } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;

interface NotificationOut {
  actions: PushAction[];
  event: ClientEvent;
  profile_tag?: string;
  read: boolean;
  room_id: string;
  ts: number;
}

function parsePositive(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9]{1,15}$/.test(value)) throw Errors.invalidParam(`${name} must be a non-negative integer`);
  return Number(value);
}

/**
 * GET /notifications (client-server-api "Listing Notifications";
 * data/api/client-server/notifications.yaml): the events the user was
 * notified about, newest first, from the rows the push gateway records.
 * `from`/`next_token` are positions in the `events` stream (opaque to the
 * client); `read` says whether the user's receipts (or own messages) in that
 * room and thread are at or past the event; `only=highlight` keeps the
 * highlighted ones ("Supply highlight to return only events where the
 * notification had the highlight tweak set").
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class NotificationsController {
  constructor(private readonly push: PushStores) {}

  @Get('notifications')
  async list(
    @CurrentRequester() requester: Requester,
    @Query('from') fromParam: unknown,
    @Query('limit') limitParam: unknown,
    @Query('only') only: unknown,
  ): Promise<{ notifications: NotificationOut[]; next_token?: string }> {
    const from = parsePositive(fromParam, 'from') ?? Number.MAX_SAFE_INTEGER;
    const requested = parsePositive(limitParam, 'limit');
    if (requested === 0) throw Errors.invalidParam('limit must be at least 1');
    const limit = Math.min(requested ?? DEFAULT_LIMIT, MAX_LIMIT);
    if (only !== undefined && typeof only !== 'string') throw Errors.invalidParam('only must be a string');
    const rows = await this.push.notifications.list(requester.userId, from, limit + 1, only === 'highlight');
    const page = rows.slice(0, limit);
    const records = new Map((await this.push.rooms.getEvents(page.map((r) => r.event_id))).map((r) => [r._id, r]));
    const floors = new Map<string, number>();
    const notifications: NotificationOut[] = [];
    for (const row of page) {
      const record = records.get(row.event_id);
      if (!record) continue;
      const key = `${row.room_id}\n${row.thread_id}`;
      let floor = floors.get(key);
      if (floor === undefined) {
        floor = await this.push.counter.readUpTo(requester.userId, row.room_id, row.thread_id);
        floors.set(key, floor);
      }
      notifications.push({
        actions: JSON.parse(row.actions) as PushAction[],
        event: toClientEvent(record, { requester }),
        read: row.event_stream <= floor,
        room_id: row.room_id,
        ts: row.ts,
      });
    }
    const out: { notifications: NotificationOut[]; next_token?: string } = { notifications };
    if (rows.length > limit) out.next_token = String(page[page.length - 1].event_stream);
    return out;
  }
}
