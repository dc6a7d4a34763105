import { Inject, Injectable } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import { BUS } from '@atrium/platform';
import {
  ROOM_SERVER_FEDERATION_SUBJECTS,
  ROOM_SERVER_SUBJECTS,
  toMatrixError,
  type BackfillRequest,
  type BackfillResponse,
  type CreateRoomRequest,
  type CreateRoomResponse,
  type RemoteMembershipRequest,
  type RemoteMembershipResponse,
  type SendEventRequest,
  type SendEventResponse,
  type SetVisibilityRequest,
  type UpgradeRoomRequest,
  type UpgradeRoomResponse,
} from '@atrium/app-room-server';

/**
 * A write waits behind the earlier inputs of its room (and, across replicas,
 * for the room's lease), which under load can take seconds; the client is
 * better served by an answer than by a 503 it would retry (a retry with the
 * same transaction ID is idempotent anyway). createRoom sends a dozen events.
 */
const CREATE_TIMEOUT_MS = 120_000;
const SEND_TIMEOUT_MS = 60_000;
/** A join through another server: make_join, send_join (the whole room state comes back), checks and storage. */
const REMOTE_MEMBERSHIP_TIMEOUT_MS = 180_000;
/** A backfill: one /backfill request, perhaps /event_auth, checks and storage. */
const BACKFILL_TIMEOUT_MS = 60_000;

/**
 * client-api's way to the room server: every write to a room is a bus request
 * (ARCHITECTURE.md "Data flow"); failures come back as the MatrixError the
 * room server raised.
 */
@Injectable()
export class RoomServerClient {
  constructor(@Inject(BUS) private readonly bus: Bus) {}

  private async request<Req, Res>(subject: string, data: Req, timeoutMs: number): Promise<Res> {
    try {
      return await this.bus.request<Req, Res>(subject, data, { timeoutMs });
    } catch (err) {
      throw toMatrixError(err);
    }
  }

  createRoom(request: CreateRoomRequest): Promise<CreateRoomResponse> {
    return this.request(ROOM_SERVER_SUBJECTS.createRoom, request, CREATE_TIMEOUT_MS);
  }

  sendEvent(request: SendEventRequest): Promise<SendEventResponse> {
    return this.request(ROOM_SERVER_SUBJECTS.sendEvent, request, SEND_TIMEOUT_MS);
  }

  upgradeRoom(request: UpgradeRoomRequest): Promise<UpgradeRoomResponse> {
    return this.request(ROOM_SERVER_SUBJECTS.upgradeRoom, request, CREATE_TIMEOUT_MS);
  }

  /** A local user joins, leaves or knocks on a room through other servers (docs/federation-design.md). */
  remoteMembership(request: RemoteMembershipRequest): Promise<RemoteMembershipResponse> {
    return this.request(ROOM_SERVER_FEDERATION_SUBJECTS.remoteMembership, request, REMOTE_MEMBERSHIP_TIMEOUT_MS);
  }

  /** Backfill from a server in the room (docs/federation-design.md "Backfill"); the answer is how many events were added. */
  backfill(request: BackfillRequest): Promise<BackfillResponse> {
    return this.request(ROOM_SERVER_FEDERATION_SUBJECTS.backfill, request, BACKFILL_TIMEOUT_MS);
  }

  async setVisibility(request: SetVisibilityRequest): Promise<void> {
    await this.request(ROOM_SERVER_SUBJECTS.setVisibility, request, SEND_TIMEOUT_MS);
  }
}
