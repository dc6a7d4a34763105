import { Body, Controller, Inject, Logger, Optional, Param, Put } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import { FEDERATION_ORIGIN_SEEN_SUBJECT, INCOMING_EDU_HANDLER, type FederationOriginSeen, type IncomingEduHandler } from '@atrium/federation-client';
import { Errors, requireJsonObject } from '@atrium/http';
import { serverAclAllows, stateKey, type JsonObject } from '@atrium/matrix';
import { BUS, TELEMETRY } from '@atrium/platform';
import type { Telemetry } from '@atrium/telemetry';
import { ROOM_STORE, type RoomStore } from '@atrium/rooms';
import { ROOM_SERVER_FEDERATION_SUBJECTS, toMatrixError, type PduResult, type ReceivePdusRequest, type ReceivePdusResponse } from '@atrium/app-room-server';
import { FederationOrigin } from '../origin';
import { InboundTransactionStore } from './transaction-store';

/** server-server-api "Transactions": "they can have at most 50 PDUs and 100 EDUs". */
export const MAX_TXN_PDUS = 50;
export const MAX_TXN_EDUS = 100;
/** The room server may fetch missing events and keys for a room's PDUs before answering. */
const RECEIVE_TIMEOUT_MS = 120_000;

export const INBOUND_TRANSACTION_STORE = Symbol('atrium:federation-inbound-txn-store');

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * PUT /_matrix/federation/v1/send/{txnId} (transactions.yaml). The origin is
 * the X-Matrix guard's; a repeated (origin, txnId) gets the stored answer
 * without being processed again; PDUs are grouped by room and handed to the
 * room server (rooms in parallel, each room's PDUs in order); EDUs go to the
 * INCOMING_EDU_HANDLER when one is provided, after the server ACL of their
 * room for m.typing and m.receipt ("Server Access Control Lists").
 */
@Controller('_matrix/federation/v1')
export class FederationTransactionsController {
  private readonly logger = new Logger('FederationTransactions');
  /** Transactions being processed here: a retransmission waits for the first run's answer. */
  private readonly inFlight = new Map<string, Promise<{ pdus: Record<string, PduResult> }>>();

  constructor(
    @Inject(BUS) private readonly bus: Bus,
    @Inject(ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(INBOUND_TRANSACTION_STORE) private readonly txns: InboundTransactionStore,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
    @Optional() @Inject(INCOMING_EDU_HANDLER) private readonly eduHandler?: IncomingEduHandler,
  ) {}

  @Put('send/:txnId')
  async send(@FederationOrigin() origin: string, @Param('txnId') txnId: string, @Body() body: unknown): Promise<{ pdus: Record<string, PduResult> }> {
    const txn = requireJsonObject(body);
    const pdus = txn['pdus'];
    const edus = txn['edus'] ?? [];
    if (!Array.isArray(pdus)) throw Errors.badJson('pdus must be an array');
    if (!Array.isArray(edus)) throw Errors.badJson('edus must be an array');
    // The spec names the limits without an error code; M_BAD_JSON with 400 is what Synapse answers.
    if (pdus.length > MAX_TXN_PDUS || edus.length > MAX_TXN_EDUS) {
      throw Errors.badJson(`A transaction holds at most ${MAX_TXN_PDUS} PDUs and ${MAX_TXN_EDUS} EDUs (got ${pdus.length} and ${edus.length})`);
    }
    // The origin is up: federation-outbound retries its queue to it now rather than at the end of a backoff.
    void this.bus.notify<FederationOriginSeen>(FEDERATION_ORIGIN_SEEN_SUBJECT, { server_name: origin }).catch(() => undefined);
    const stored = (await this.txns.get(origin, txnId)) as { pdus: Record<string, PduResult> } | undefined;
    if (stored) return stored;
    const key = `${origin}\n${txnId}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    // docs/federation-design.md "Tracing": one span per transaction; the bus carries its context to the room server.
    const work = this.telemetry
      .withSpan('federation.transaction', { attributes: { 'matrix.origin': origin, 'matrix.txn_id': txnId, 'matrix.pdu_count': pdus.length, 'matrix.edu_count': edus.length } }, async (span) => {
        const response = await this.process(origin, txnId, pdus, edus);
        span.setAttribute('matrix.event_ids', Object.keys(response.pdus));
        return response;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, work);
    return work;
  }

  private async process(origin: string, txnId: string, pdus: unknown[], edus: unknown[]): Promise<{ pdus: Record<string, PduResult> }> {
    // Group by room, keeping the transaction's order inside each room.
    const byRoom = new Map<string, JsonObject[]>();
    for (const pdu of pdus) {
      // A PDU without a room ID cannot be placed (nor its event ID computed): it is dropped.
      if (!isObject(pdu) || typeof pdu['room_id'] !== 'string') continue;
      const list = byRoom.get(pdu['room_id']) ?? [];
      list.push(pdu);
      byRoom.set(pdu['room_id'], list);
    }
    const results: Record<string, PduResult> = {};
    await Promise.all(
      [...byRoom].map(async ([roomId, roomPdus]) => {
        const request: ReceivePdusRequest = { origin, room_id: roomId, pdus: roomPdus };
        let answer: ReceivePdusResponse;
        try {
          answer = await this.bus.request<ReceivePdusRequest, ReceivePdusResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.receivePdus, request, { timeoutMs: RECEIVE_TIMEOUT_MS });
        } catch (err) {
          // The room server could not take them (down, overloaded): fail the transaction, the sender retries it.
          throw toMatrixError(err);
        }
        Object.assign(results, answer.pdus);
      }),
    );
    await this.handleEdus(origin, edus);
    const response = { pdus: results };
    await this.txns.put(origin, txnId, response);
    return response;
  }

  private async aclAllows(roomId: unknown, origin: string): Promise<boolean> {
    if (typeof roomId !== 'string') return true;
    const acl = (await this.rooms.currentStateEventsFor(roomId, [['m.room.server_acl', '']])).get(stateKey('m.room.server_acl', ''));
    return serverAclAllows(acl?.content, origin);
  }

  private async handleEdus(origin: string, edus: unknown[]): Promise<void> {
    const handler = this.eduHandler;
    if (!handler) return;
    for (const edu of edus) {
      if (!isObject(edu) || typeof edu['edu_type'] !== 'string' || !isObject(edu['content'])) continue;
      let content = edu['content'];
      // "For typing notifications (m.typing), if the sending server is denied access to the room identified by room_id, the EDU MUST be ignored."
      if (edu['edu_type'] === 'm.typing' && !(await this.aclAllows(content['room_id'], origin))) continue;
      // "For receipts (m.receipt), all receipts for a particular room ID MUST be ignored if the sending server is denied access."
      if (edu['edu_type'] === 'm.receipt') {
        const kept: JsonObject = {};
        for (const [roomId, receipts] of Object.entries(content)) if (await this.aclAllows(roomId, origin)) kept[roomId] = receipts;
        if (Object.keys(kept).length === 0) continue;
        content = kept;
      }
      try {
        await handler.handle({ origin, edu_type: edu['edu_type'], content });
      } catch (err) {
        // EDUs have no per-item result: one bad EDU must not fail the transaction.
        this.logger.warn(`EDU ${edu['edu_type']} from ${origin}: ${(err as Error).message}`);
      }
    }
  }
}
