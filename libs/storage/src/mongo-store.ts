/**
 * MongoDB adapter of the storage port (cluster mode), on the official
 * `mongodb` driver. Runs against MongoDB 6+ and FerretDB 1.24 (the CI server),
 * so it uses only single-document operations and plain indexes.
 *
 * The port's filters are MongoDB's own query language restricted to top-level
 * scalar fields, so they pass through after a name check.
 */
import { MongoClient, MongoServerError, type Collection as MongoCollection, type Db, type Filter as MongoFilter } from 'mongodb';
import type { Collection, CollectionSpec, Doc, DocumentStore, FieldValue, Filter, FindOptions } from './port';
import { DuplicateKeyError } from './port';
import { assertCollectionName, assertFieldName, definedEntries } from './names';

const DUPLICATE_KEY = 11000;
const SEQUENCES = '_sequences';
/** Bounded retries of an upsert that lost a race to insert the same `_id`. */
const UPSERT_RETRIES = 5;

/** Database name from the URI path (`mongodb://host/NAME?opts`), `atrium` when absent. */
export function mongoDatabaseName(url: string): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/.exec(url);
  const name = match ? decodeURIComponent(match[1]) : '';
  return name === '' ? 'atrium' : name;
}

function isDuplicateKey(err: unknown): err is MongoServerError {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/**
 * Whether an E11000 error is about `_id`. MongoDB sets keyPattern; FerretDB
 * 1.24 gives only the message, which names the index (`_id_`) as MongoDB's does.
 */
function isIdClash(err: MongoServerError): boolean {
  const keyPattern: unknown = err.keyPattern;
  if (keyPattern && typeof keyPattern === 'object') {
    const keys = Object.keys(keyPattern);
    return keys.length === 1 && keys[0] === '_id';
  }
  return /index: _id_ /.test(err.message) || /\b_id_\b/.test(err.errmsg ?? '');
}

function checkFilter(filter: object): void {
  for (const field of Object.keys(filter)) if (field !== '_id') assertFieldName(field);
}

/** `{ _id: id }` combined with a caller's filter (which may itself mention `_id`). */
function byIdAnd(id: string, where: object | undefined): MongoFilter<Doc> {
  if (!where || Object.keys(where).length === 0) return { _id: id };
  checkFilter(where);
  return '_id' in where ? { $and: [{ _id: id }, where as MongoFilter<Doc>] } : ({ ...where, _id: id } as MongoFilter<Doc>);
}

function setFields(set: object): Record<string, FieldValue> {
  const out: Record<string, FieldValue> = {};
  for (const [field, value] of definedEntries(set as Record<string, FieldValue>)) {
    if (field === '_id') throw new Error('update cannot change _id');
    assertFieldName(field);
    out[field] = value;
  }
  return out;
}

class MongoDocCollection<T extends Doc> implements Collection<T> {
  constructor(private readonly coll: MongoCollection<Doc>) {}

  async insert(doc: T): Promise<boolean> {
    checkFilter(doc);
    try {
      await this.coll.insertOne(doc);
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) {
        if (isIdClash(err)) return false;
        throw new DuplicateKeyError(err.message);
      }
      throw err;
    }
  }

  async put(doc: T): Promise<void> {
    checkFilter(doc);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.coll.replaceOne({ _id: doc._id }, doc, { upsert: true });
        return;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        // Two upserts of a new _id may race to insert it; the loser retries as a replace.
        if (isIdClash(err) && attempt < UPSERT_RETRIES) continue;
        throw new DuplicateKeyError(err.message);
      }
    }
  }

  async get(id: string): Promise<T | null> {
    return (await this.coll.findOne({ _id: id })) as T | null;
  }

  async getMany(ids: string[]): Promise<T[]> {
    if (ids.length === 0) return [];
    const docs = (await this.coll.find({ _id: { $in: ids } }).toArray()) as T[];
    // Same order as the ids asked for, matching the SQLite adapter.
    const byId = new Map(docs.map((d) => [d._id, d]));
    const out: T[] = [];
    for (const id of new Set(ids)) {
      const doc = byId.get(id);
      if (doc) out.push(doc);
    }
    return out;
  }

  async findOne(filter: Filter<T>): Promise<T | null> {
    checkFilter(filter);
    return (await this.coll.findOne(filter as MongoFilter<Doc>)) as T | null;
  }

  async find(filter: Filter<T>, options: FindOptions<T> = {}): Promise<T[]> {
    checkFilter(filter);
    let cursor = this.coll.find(filter as MongoFilter<Doc>);
    if (options.sort) {
      const sort = definedEntries(options.sort as Record<string, 1 | -1>);
      for (const [field] of sort) if (field !== '_id') assertFieldName(field);
      if (sort.length > 0) cursor = cursor.sort(Object.fromEntries(sort));
    }
    if (options.skip) cursor = cursor.skip(options.skip);
    if (options.limit) cursor = cursor.limit(options.limit);
    return (await cursor.toArray()) as T[];
  }

  async count(filter: Filter<T>): Promise<number> {
    checkFilter(filter);
    return this.coll.countDocuments(filter as MongoFilter<Doc>);
  }

  async update(id: string, set: Partial<T>, where?: Filter<T>, unset?: (keyof T & string)[]): Promise<boolean> {
    const filter = byIdAnd(id, where);
    const $set = setFields(set);
    const $unset: Record<string, ''> = {};
    for (const field of unset ?? []) {
      assertFieldName(field);
      $unset[field] = '';
    }
    const update: Record<string, object> = {};
    if (Object.keys($set).length > 0) update.$set = $set;
    if (Object.keys($unset).length > 0) update.$unset = $unset;
    // MongoDB rejects an empty update document; with nothing to write the answer is whether it matches.
    if (Object.keys(update).length === 0) return (await this.coll.countDocuments(filter, { limit: 1 })) === 1;
    try {
      const result = await this.coll.updateOne(filter, update);
      return result.matchedCount === 1;
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateKeyError(err.message);
      throw err;
    }
  }

  async updateMany(filter: Filter<T>, set: Partial<T>): Promise<number> {
    checkFilter(filter);
    const $set = setFields(set);
    if (Object.keys($set).length === 0) return this.coll.countDocuments(filter as MongoFilter<Doc>);
    try {
      const result = await this.coll.updateMany(filter as MongoFilter<Doc>, { $set });
      return result.matchedCount;
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateKeyError(err.message);
      throw err;
    }
  }

  async delete(id: string): Promise<boolean> {
    return (await this.coll.deleteOne({ _id: id })).deletedCount === 1;
  }

  async deleteMany(filter: Filter<T>): Promise<number> {
    checkFilter(filter);
    return (await this.coll.deleteMany(filter as MongoFilter<Doc>)).deletedCount;
  }
}

interface SequenceDoc {
  _id: string;
  value: number;
}

export class MongoDocumentStore implements DocumentStore {
  private readonly client: MongoClient;
  private readonly db: Db;
  private connected: Promise<MongoClient> | undefined;

  constructor(url: string) {
    // ignoreUndefined: optional fields left undefined are dropped, as the SQLite adapter does.
    this.client = new MongoClient(url, { ignoreUndefined: true, serverSelectionTimeoutMS: 10_000 });
    this.db = this.client.db(mongoDatabaseName(url));
  }

  private connect(): Promise<MongoClient> {
    this.connected ??= this.client.connect();
    return this.connected;
  }

  async collection<T extends Doc>(spec: CollectionSpec): Promise<Collection<T>> {
    assertCollectionName(spec.name);
    await this.connect();
    const coll = this.db.collection<Doc>(spec.name);
    for (const index of spec.indexes ?? []) {
      if (index.fields.length === 0) throw new Error(`index on ${spec.name} has no fields`);
      for (const field of index.fields) assertFieldName(field);
      const name = `${index.unique ? 'u' : 'i'}_${index.fields.join('__')}`;
      await coll.createIndex(Object.fromEntries(index.fields.map((f) => [f, 1 as const])), { name, unique: index.unique ?? false });
    }
    return new MongoDocCollection<T>(coll);
  }

  async nextSequence(name: string, increment = 1): Promise<number> {
    await this.connect();
    const seqs = this.db.collection<SequenceDoc>(SEQUENCES);
    for (let attempt = 0; ; attempt++) {
      try {
        const doc = await seqs.findOneAndUpdate({ _id: name }, { $inc: { value: increment } }, { upsert: true, returnDocument: 'after' });
        if (!doc) throw new Error(`counter ${name} was not returned`);
        return Number(doc.value);
      } catch (err) {
        // Concurrent first uses of a counter race to insert it; the loser retries as an increment.
        if (isDuplicateKey(err) && attempt < UPSERT_RETRIES) continue;
        throw err;
      }
    }
  }

  async currentSequence(name: string): Promise<number> {
    await this.connect();
    const doc = await this.db.collection<SequenceDoc>(SEQUENCES).findOne({ _id: name });
    return doc ? Number(doc.value) : 0;
  }

  async ping(): Promise<boolean> {
    try {
      await this.connect();
      await this.db.command({ ping: 1 });
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
