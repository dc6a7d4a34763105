import { Body, Controller, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { isReceiptType, MAIN_THREAD, RECEIPT_TYPES, type ReceiptType } from '@atrium/ephemeral';
import { AccessTokenGuard, CurrentRequester, Errors, optionalJsonObject, requireJsonObject, type Requester } from '@atrium/http';
import type { EventRecord } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { RoomsService } from '../rooms/rooms.service';
import { EphemeralService, FULLY_READ } from './ephemeral.service';

/** Typing timeout when the client gives none (Synapse's default; typing.yaml only says `timeout` may be omitted with `typing: false`). */
const DEFAULT_TYPING_TIMEOUT_MS = 30_000;

/** `{eventId}` path parameters and read marker values: "format: mx-event-id, pattern: ^\$". */
function checkEventId(name: string, eventId: string): string {
  if (!eventId.startsWith('$') || eventId.length > 255) throw Errors.invalidParam(`${name} is not an event ID: ${JSON.stringify(eventId)}`);
  return eventId;
}

/**
 * Spec: data/api/client-server/typing.yaml, receipts.yaml, read_markers.yaml
 * (modules typing_notifications.md, receipts.md, read_markers.md). Guests may
 * not call them: none is in "Guest access"'s list.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class EphemeralController {
  constructor(
    private readonly ephemeral: EphemeralService,
    private readonly rooms: RoomsService,
  ) {}

  /**
   * PUT /rooms/{roomId}/typing/{userId}. Only for oneself (403 M_FORBIDDEN,
   * as for other /{userId} endpoints) and only in a joined room (403).
   * `typing` is required and boolean; `timeout` a non-negative integer
   * (capped by the store), ignored when `typing` is false.
   */
  @Put('rooms/:roomId/typing/:userId')
  async typing(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Param('userId') userId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    this.rooms.checkRoomId(roomId);
    if (userId !== requester.userId) throw Errors.forbidden('Cannot set the typing state of another user');
    const body = requireJsonObject(rawBody);
    const typing = body.typing;
    if (typing === undefined) throw Errors.missingParam('typing');
    if (typeof typing !== 'boolean') throw Errors.badJson('"typing" must be a boolean');
    let timeout = DEFAULT_TYPING_TIMEOUT_MS;
    if (typing && body.timeout !== undefined) {
      if (typeof body.timeout !== 'number' || !Number.isSafeInteger(body.timeout)) throw Errors.badJson('"timeout" must be an integer');
      if (body.timeout < 0) throw Errors.invalidParam('"timeout" must not be negative');
      timeout = body.timeout;
    }
    await this.rooms.requireJoined(roomId, requester.userId);
    await this.ephemeral.setTyping(requester.userId, roomId, typing, timeout);
    return {};
  }

  /**
   * POST /rooms/{roomId}/receipt/{receiptType}/{eventId}. `receiptType` is
   * one of the enum (m.read, m.read.private, m.fully_read), else 400
   * M_INVALID_PARAM; `m.fully_read` "effectively calls /read_markers". The
   * 400s for `thread_id`: "It is not a string. It is empty. It is provided
   * for an incompatible receipt type. The event_id is not related to the
   * thread_id."
   */
  @Post('rooms/:roomId/receipt/:receiptType/:eventId')
  @HttpCode(200)
  async receipt(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Param('receiptType') receiptType: string,
    @Param('eventId') eventId: string,
    @Body() rawBody: unknown,
  ): Promise<Record<string, never>> {
    this.rooms.checkRoomId(roomId);
    if (receiptType !== FULLY_READ && !isReceiptType(receiptType)) {
      throw Errors.invalidParam(`Receipt type must be one of ${[...RECEIPT_TYPES, FULLY_READ].join(', ')}`);
    }
    checkEventId('eventId', eventId);
    // The body is required by receipts.yaml, but clients (older matrix-js-sdk among them) send none: read it as `{}`.
    const body = optionalJsonObject(rawBody);
    let threadId: string | null = null;
    if (body.thread_id !== undefined) {
      if (typeof body.thread_id !== 'string' || body.thread_id === '') throw Errors.invalidParam('thread_id field must be a non-empty string');
      if (receiptType === FULLY_READ) throw Errors.invalidParam('thread_id is not allowed with m.fully_read');
      if (body.thread_id !== MAIN_THREAD) checkEventId('thread_id', body.thread_id);
      threadId = body.thread_id;
    }
    // Only joined members send receipts and markers (403 otherwise, as for the room's other endpoints).
    await this.rooms.requireJoined(roomId, requester.userId);
    const event = await this.ephemeral.requireEvent(roomId, eventId);
    if (receiptType === FULLY_READ) await this.ephemeral.setFullyRead(requester.userId, roomId, event);
    else await this.ephemeral.putReceipt(requester.userId, roomId, receiptType, event, threadId);
    return {};
  }

  /**
   * POST /rooms/{roomId}/read_markers: `m.fully_read` (optional since v1.4),
   * `m.read` and `m.read.private`, each an event ID of the room; the receipts
   * are handled "the same as how it would for a request to /receipt". Every
   * value is checked before anything is written.
   */
  @Post('rooms/:roomId/read_markers')
  @HttpCode(200)
  async readMarkers(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    this.rooms.checkRoomId(roomId);
    const body = requireJsonObject(rawBody);
    const wanted: Array<[ReceiptType | typeof FULLY_READ, string]> = [];
    for (const key of [...RECEIPT_TYPES, FULLY_READ] as const) {
      const value = body[key];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string') throw Errors.badJson(`"${key}" must be a string`);
      wanted.push([key, checkEventId(key, value)]);
    }
    // Only joined members send receipts and markers (403 otherwise, as for the room's other endpoints).
    await this.rooms.requireJoined(roomId, requester.userId);
    const events: Array<[ReceiptType | typeof FULLY_READ, EventRecord]> = [];
    for (const [key, eventId] of wanted) events.push([key, await this.ephemeral.requireEvent(roomId, eventId)]);
    for (const [key, event] of events) {
      if (key === FULLY_READ) await this.ephemeral.setFullyRead(requester.userId, roomId, event);
      else await this.ephemeral.putReceipt(requester.userId, roomId, key, event, null);
    }
    return {};
  }
}
