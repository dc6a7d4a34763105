import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit, Optional } from '@nestjs/common';
import { FEDERATION_CLIENT, KEY_RING, type FederationClient, type KeyRing } from '@atrium/federation-client';
import type { Bus, BusMessage, Subscription } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { MatrixError } from '@atrium/http';
import { ACCOUNT_STORE, BUS, CACHE, CONFIG, DOCUMENT_STORE, SIGNING_KEY, TELEMETRY, type SigningKey } from '@atrium/platform';
import type { Telemetry } from '@atrium/telemetry';
import type { AccountStore } from '@atrium/accounts';
import type { Cache } from '@atrium/cache';
import { E2eeService } from '@atrium/e2ee';
import { RoomStore, SYNC_WAKE_SUBJECT } from '@atrium/rooms';
import { AccountDataStore, invitesBlockedBy } from '@atrium/user-data';
import type { DocumentStore } from '@atrium/storage';
import {
  busErrorOf,
  ROOM_SERVER_FEDERATION_SUBJECTS,
  type BackfillRequest,
  type BackfillResponse,
  ROOM_SERVER_SUBJECTS,
  type ReceivePdusRequest,
  type ReceivePdusResponse,
  type MakeMembershipRequest,
  type MakeMembershipResponse,
  type ReceiveInviteRequest,
  type ReceiveInviteResponse,
  type RemoteMembershipRequest,
  type RemoteMembershipResponse,
  type SendMembershipRequest,
  type SendMembershipResponse,
  type CreateRoomRequest,
  type CreateRoomResponse,
  type LeaveAllRoomsRequest,
  type LeaveAllRoomsResponse,
  type SendEventRequest,
  type SendEventResponse,
  type SetVisibilityRequest,
  type UpgradeRoomRequest,
  type UpgradeRoomResponse,
} from './room-server.api';
import { FederationMembership } from './federation-membership';
import { RoomWriter } from './room-writer';
import { FederationInput } from './federation/federation-input';
import { Backfiller } from './federation/backfill';
import { PolicyServers } from './federation/policy-server';

/**
 * Answers room-server requests on the bus and hands them to the RoomWriter
 * (see room-writer.ts for the one-writer-per-room rule and its limitation
 * across replicas). MatrixErrors travel back with their status in `details`.
 */
@Injectable()
export class RoomServerService implements OnModuleInit, OnModuleDestroy {
  private subscriptions: Subscription[] = [];
  private readonly logger = new Logger('RoomServer');
  /**
   * Remote PDUs in (docs/federation-design.md "Room-server federation input
   * (as built)"); absent without the federation transport (KEY_RING, FEDERATION_CLIENT).
   */
  federationInput?: FederationInput;

  constructor(
    @Inject(BUS) private readonly bus: Bus,
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(SIGNING_KEY) private readonly signingKey: SigningKey,
    @Inject(CACHE) private readonly cache: Cache,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(TELEMETRY) private readonly telemetry: Telemetry,
    @Optional() @Inject(FEDERATION_CLIENT) private readonly federationClient?: FederationClient,
    @Optional() @Inject(KEY_RING) private readonly keyRing?: KeyRing,
  ) {}

  /** The key data (owned by key-server), read here for a joining user's device list (RoomWriter `localJoin`). */
  private e2ee(): Promise<E2eeService> {
    return E2eeService.shared(this.store, this.bus, this.accounts, this.config.server_name);
  }

  async onModuleInit(): Promise<void> {
    const rooms = await RoomStore.open(this.store);
    // Read only here (invite permission); its writer is client-api's account-data endpoint.
    const accountData = await AccountDataStore.open(this.store, rooms.streams, (wake) => this.bus.notify(SYNC_WAKE_SUBJECT, wake));
    const invitesBlocked = (userId: string): Promise<boolean> => invitesBlockedBy(accountData, userId);
    const policyServers = new PolicyServers(rooms, { serverName: this.config.server_name, client: this.federationClient, log: (message) => this.logger.log(message) });
    const writer = new RoomWriter(rooms, this.bus, {
      serverName: this.config.server_name, signingKey: this.signingKey,
      cache: this.cache,
      metrics: this.telemetry.metrics,
      isGuest: async (userId) => (await this.accounts.getUser(userId))?.is_guest ?? false,
      // Set below: the membership handshakes need the writer, the writer their invite step.
      remoteInvite: (event, version) => membership.sendInvite(event, version),
      invitesBlocked,
      policyServers,
      localJoin: async (userId, roomId) => (await this.e2ee()).deviceListsOnJoin(userId, roomId),
    });
    const membership: FederationMembership = new FederationMembership(rooms, writer, this.bus, {
      serverName: this.config.server_name,
      signingKey: this.signingKey,
      client: this.federationClient,
      keyRing: this.keyRing,
      input: () => this.federationInput,
      userExists: async (userId) => {
        const user = await this.accounts.getUser(userId);
        return user !== null && user !== undefined && !user.deactivated;
      },
      invitesBlocked,
    });
    if (this.keyRing && this.federationClient) {
      this.federationInput = new FederationInput(rooms, this.bus, {
        serverName: this.config.server_name,
        keyRing: this.keyRing,
        client: this.federationClient,
        serialise: (roomId, task) => writer.serialise(roomId, task),
        metrics: this.telemetry.metrics,
        log: (message) => this.logger.log(message),
        policyServers,
      });
    }
    let backfiller: Backfiller | undefined;
    const handle = async <Req, Res>(subject: string, fn: (data: Req) => Promise<Res>): Promise<void> => {
      this.subscriptions.push(
        await this.bus.handle<Req, Res>(subject, async (message: BusMessage<Req>) => {
          try {
            return await fn(message.data);
          } catch (err) {
            if (err instanceof MatrixError) throw busErrorOf(err);
            throw err;
          }
        }),
      );
    };
    await handle<LeaveAllRoomsRequest, LeaveAllRoomsResponse>(ROOM_SERVER_SUBJECTS.leaveAllRooms, async (req) => ({
      left_rooms: await writer.leaveAllRooms(req.user_id, req.reason),
    }));
    await handle<CreateRoomRequest, CreateRoomResponse>(ROOM_SERVER_SUBJECTS.createRoom, (req) => writer.createRoom(req));
    await handle<SendEventRequest, SendEventResponse>(ROOM_SERVER_SUBJECTS.sendEvent, (req) => writer.sendEvent(req));
    await handle<UpgradeRoomRequest, UpgradeRoomResponse>(ROOM_SERVER_SUBJECTS.upgradeRoom, (req) => writer.upgradeRoom(req));
    // Federation membership handshakes (docs/federation-design.md).
    await handle<MakeMembershipRequest, MakeMembershipResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.makeMembership, (req) => membership.makeMembership(req));
    await handle<SendMembershipRequest, SendMembershipResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.sendMembership, (req) => membership.sendMembership(req));
    await handle<ReceiveInviteRequest, ReceiveInviteResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.receiveInvite, (req) => membership.receiveInvite(req));
    await handle<RemoteMembershipRequest, RemoteMembershipResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.remoteMembership, (req) => membership.remoteMembership(req));
    await handle<ReceivePdusRequest, ReceivePdusResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.receivePdus, async (req) => {
      const input = this.federationInput;
      if (!input) throw new MatrixError(503, 'M_UNKNOWN', 'Federation is not available on this room server');
      return { pdus: await input.receivePdus(req.origin, req.room_id, req.pdus) };
    });
    await handle<BackfillRequest, BackfillResponse>(ROOM_SERVER_FEDERATION_SUBJECTS.backfill, async (req) => {
      // Without federation there is nothing to backfill from.
      const input = this.federationInput;
      if (!input || !this.federationClient || !this.keyRing) return { added: 0 };
      backfiller ??= new Backfiller(rooms, input, { serverName: this.config.server_name, client: this.federationClient, keyRing: this.keyRing, serialise: (roomId, task) => writer.serialise(roomId, task), log: (message) => this.logger.log(message) });
      return { added: (await backfiller.backfill(req.room_id, req.limit)).added };
    });
    await handle<SetVisibilityRequest, Record<string, never>>(ROOM_SERVER_SUBJECTS.setVisibility, async (req) => {
      await rooms.setVisibility(req.room_id, req.visibility);
      return {};
    });
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.unsubscribe()));
    this.subscriptions = [];
  }
}
