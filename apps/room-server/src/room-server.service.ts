import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Bus, Subscription } from '@atrium/bus';
import { BUS } from '@atrium/platform';
import { ROOM_SERVER_SUBJECTS, type LeaveAllRoomsRequest, type LeaveAllRoomsResponse } from './room-server.api';

/**
 * Answers room-server requests on the bus. Rooms themselves (creation, joins,
 * sending, state) arrive with the Client-Server API work; until then a user is
 * in no room, so leaving all rooms leaves none — the request still travels the
 * bus so that deactivation already goes through the single writer.
 */
@Injectable()
export class RoomServerService implements OnModuleInit, OnModuleDestroy {
  private subscriptions: Subscription[] = [];

  constructor(@Inject(BUS) private readonly bus: Bus) {}

  async onModuleInit(): Promise<void> {
    this.subscriptions.push(
      await this.bus.handle<LeaveAllRoomsRequest, LeaveAllRoomsResponse>(ROOM_SERVER_SUBJECTS.leaveAllRooms, async () => ({
        left_rooms: [],
      })),
    );
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.unsubscribe()));
    this.subscriptions = [];
  }
}
