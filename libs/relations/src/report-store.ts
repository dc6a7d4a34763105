import { randomUUID } from 'node:crypto';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * Content reports (client-server-api "Reporting content"): what users report
 * is kept for the server's administrators ("Servers are free to handle the
 * reported content however they desire"). One document per report; an
 * admin API reads them newest first or per room/user.
 */
export interface ReportRecord extends Doc {
  _id: string;
  /** event (POST /rooms/{roomId}/report/{eventId}), room (v1.13) or user (v1.14). */
  kind: 'event' | 'room' | 'user';
  reporter: string;
  room_id: string | null;
  event_id: string | null;
  /** The reported user (user reports), or the sender of a reported event. */
  user_id: string | null;
  /** Client text, kept as given ("May be blank"). */
  reason: string;
  created_ts: number;
}

export interface NewReport {
  kind: ReportRecord['kind'];
  reporter: string;
  room_id: string | null;
  event_id: string | null;
  user_id: string | null;
  reason: string;
}

export class ReportStore {
  private constructor(
    private readonly reports: Collection<ReportRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<ReportStore> {
    return new ReportStore(
      await store.collection<ReportRecord>({
        name: 'content_reports',
        indexes: [{ fields: ['created_ts'] }, { fields: ['room_id', 'created_ts'] }, { fields: ['user_id', 'created_ts'] }],
      }),
      now,
    );
  }

  /** Stores a report; returns its ID. A random ID, so two identical reports are two reports. */
  async add(report: NewReport): Promise<string> {
    const id = randomUUID();
    await this.reports.insert({ ...report, _id: id, created_ts: this.now() });
    return id;
  }

  /** Reports newest first (optionally of one room or one reported user), for administrators. */
  list(options: { roomId?: string; userId?: string; limit?: number } = {}): Promise<ReportRecord[]> {
    const filter: Partial<Record<'room_id' | 'user_id', string>> = {};
    if (options.roomId !== undefined) filter.room_id = options.roomId;
    if (options.userId !== undefined) filter.user_id = options.userId;
    return this.reports.find(filter, { sort: { created_ts: -1 }, limit: options.limit ?? 100 });
  }

  get(id: string): Promise<ReportRecord | null> {
    return this.reports.get(id);
  }
}
