import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { canonicalJson, parseFilter, type Filter } from '@atrium/matrix';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { DOCUMENT_STORE } from '@atrium/platform';

interface FilterRecord extends Doc {
  _id: string; // user_id \n filter_id
  user_id: string;
  filter_id: string;
  /** The filter as the client uploaded it (validated), as JSON text (architecture: client JSON stored as a string). */
  json: string;
  created_ts: number;
}

/**
 * Uploaded filters (filter.yaml "POST /user/{userId}/filter"). A filter ID is
 * derived from the canonical JSON of the filter, so uploading the same filter
 * again (clients do, on every start) gives the same ID and stores nothing new:
 * the insert is idempotent (ARCHITECTURE.md rule 4). IDs are base64url, so
 * never start with `{` (the spec reserves that for inline filters).
 */
@Injectable()
export class FilterStore {
  private collection?: Promise<Collection<FilterRecord>>;

  constructor(@Inject(DOCUMENT_STORE) private readonly store: DocumentStore) {}

  private filters(): Promise<Collection<FilterRecord>> {
    this.collection ??= this.store.collection<FilterRecord>({ name: 'user_filters', indexes: [{ fields: ['user_id'] }] });
    return this.collection;
  }

  /** Stores a validated filter (the object the client sent); returns its ID. */
  async put(userId: string, filter: Record<string, unknown>): Promise<string> {
    // Not strict: unknown keys the spec lets clients add may hold floats or large numbers.
    const json = canonicalJson(filter, { strict: false });
    const filterId = createHash('sha256').update(json).digest('base64url').slice(0, 16);
    await (await this.filters()).insert({ _id: `${userId}\n${filterId}`, user_id: userId, filter_id: filterId, json, created_ts: Date.now() });
    return filterId;
  }

  /** The stored filter as uploaded, or null. */
  async getRaw(userId: string, filterId: string): Promise<Record<string, unknown> | null> {
    const record = await (await this.filters()).get(`${userId}\n${filterId}`);
    return record ? (JSON.parse(record.json) as Record<string, unknown>) : null;
  }

  /** The stored filter, parsed, or null. */
  async get(userId: string, filterId: string): Promise<Filter | null> {
    const raw = await this.getRaw(userId, filterId);
    return raw ? parseFilter(raw) : null;
  }
}
