/**
 * MongoDB adapter of the storage port (cluster mode), on the official
 * `mongodb` driver. Runs against MongoDB 6+ and FerretDB 1.24 (the CI server),
 * so it uses only single-document operations and plain indexes.
 *
 * The port's filters are MongoDB's own query language restricted to top-level
 * scalar fields, so they pass through after a name check.
 *
 * FerretDB 1.24 (on PostgreSQL, as the test harness runs it, or on SQLite)
 * differs from MongoDB in three ways this adapter works around, found by the
 * contract suite:
 * - its E11000 errors name neither the index nor the key, so an insert that
 *   clashes is told apart (`_id` or another unique index) by looking `_id` up;
 * - a unique clash during update/replace comes back as InternalError (code 1)
 *   whose message carries the backend's own (SQLite's "UNIQUE constraint
 *   failed", PostgreSQL's SQLSTATE 23505);
 * - update, replace and findAndModify read the document, change it in Go and
 *   write it back by `_id` without re-checking the filter, so concurrent
 *   conditional updates and `$inc` lose writes. On FerretDB those operations
 *   are therefore serialised per collection inside this process. That keeps
 *   the port's guarantees for one process (tests, CI); several processes on
 *   one FerretDB would still race. MongoDB itself needs none of this.
 *
 * FerretDB 1.24 hands its backend only part of a filter: on PostgreSQL the
 * top-level scalar equalities (no ranges, `$in` or sorts), on SQLite nothing
 * but `{ _id: <string> }`; the rest is filtered and sorted in Go over every
 * row the backend returned (BENCHMARKS.md, cluster mode). getMany is
 * therefore answered there by lookups by `_id` (see MAX_POINT_LOOKUPS).
 */
import { MongoBulkWriteError, MongoClient, MongoServerError, type Collection as MongoCollection, type Db, type Filter as MongoFilter } from 'mongodb';
import type { Collection, CollectionSpec, Doc, DocumentStore, FieldValue, Filter, FindOptions } from './port';
import { DuplicateKeyError } from './port';
import { assertCollectionName, assertFieldName, definedEntries } from './names';
import { attachMongoProfile } from './mongo-profile';

const DUPLICATE_KEY = 11000;
const SEQUENCES = '_sequences';
/** Bounded retries of an upsert that lost a race to insert the same `_id`. */
const UPSERT_RETRIES = 5;
/**
 * On FerretDB, getMany of up to this many IDs is answered by one `{ _id }`
 * find per ID (its only filter served by key) instead of one `$in` find that
 * scans the collection; past it, the scan is cheaper than the round trips.
 */
const MAX_POINT_LOOKUPS = 100;

/** Database name from the URI path (`mongodb://host/NAME?opts`), `atrium` when absent. */
export function mongoDatabaseName(url: string): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/.exec(url);
  const name = match ? decodeURIComponent(match[1]) : '';
  return name === '' ? 'atrium' : name;
}

function isDuplicateKey(err: unknown): err is MongoServerError {
  if (!(err instanceof MongoServerError)) return false;
  // FerretDB 1.24 reports unique clashes on update as InternalError with its backend's message (SQLite's, or PostgreSQL's SQLSTATE 23505).
  return err.code === DUPLICATE_KEY || (err.code === 1 && /UNIQUE constraint failed|SQLSTATE 23505/.test(err.message));
}

/** Whether an E11000 error says it was `_id` (MongoDB's keyPattern); undefined when the server does not say (FerretDB). */
function clashIsOnId(err: MongoServerError): boolean | undefined {
  const keyPattern: unknown = err.keyPattern;
  if (keyPattern && typeof keyPattern === 'object') {
    const keys = Object.keys(keyPattern);
    return keys.length === 1 && keys[0] === '_id';
  }
  if (/ index: _id_ /.test(err.message)) return true;
  if (/ index: /.test(err.message)) return false;
  return undefined;
}

/** Runs `fn` after every earlier call with the same key has settled (an in-process mutex). */
type Serialiser = <R>(fn: () => Promise<R>) => Promise<R>;
const queues = new Map<string, Promise<unknown>>();
function serialiserFor(key: string): Serialiser {
  return <R>(fn: () => Promise<R>): Promise<R> => {
    const previous = queues.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    queues.set(key, settled);
    void settled.then(() => {
      if (queues.get(key) === settled) queues.delete(key);
    });
    return run;
  };
}
const direct: Serialiser = (fn) => fn();

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
  /**
   * @param readModifyWrite wraps operations that FerretDB performs as
   *   read-then-write (see the file comment); a pass-through on MongoDB.
   */
  constructor(
    private readonly coll: MongoCollection<Doc>,
    private readonly readModifyWrite: Serialiser,
    private readonly pointLookups: boolean,
  ) {}

  async insert(doc: T): Promise<boolean> {
    checkFilter(doc);
    try {
      await this.coll.insertOne(doc);
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) {
        const onId = clashIsOnId(err) ?? (await this.coll.countDocuments({ _id: doc._id }, { limit: 1 })) === 1;
        if (onId) return false;
        throw new DuplicateKeyError(err.message);
      }
      throw err;
    }
  }

  async insertMany(docs: T[]): Promise<string[]> {
    if (docs.length === 0) return [];
    for (const doc of docs) checkFilter(doc);
    // Unordered: a clash skips that document only and the server goes on with the rest.
    try {
      await this.coll.insertMany(docs, { ordered: false });
      return docs.map((d) => d._id);
    } catch (err) {
      if (!(err instanceof MongoBulkWriteError)) throw err;
      const writeErrors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
      const failed: string[] = [];
      const failedAt = new Set<number>();
      let otherIndex: string | undefined;
      for (const we of writeErrors) {
        if (we.code !== DUPLICATE_KEY) throw err;
        const id = docs[we.index]?._id;
        if (id === undefined) throw err;
        failedAt.add(we.index);
        // As in insert: MongoDB names the index; FerretDB does not, so its clashes are looked up below.
        const onId = /index: _id_ /.test(we.errmsg ?? '') ? true : / index: /.test(we.errmsg ?? '') ? false : undefined;
        if (onId === false) otherIndex ??= we.errmsg ?? 'duplicate key';
        else if (onId === undefined) failed.push(id);
      }
      if (otherIndex === undefined && failed.length > 0) {
        // A document that failed although its _id is not stored clashed on another unique index.
        const stored = new Set((await this.coll.find({ _id: { $in: failed } }, { projection: { _id: 1 } }).toArray()).map((d) => d._id));
        const missing = failed.find((id) => !stored.has(id));
        if (missing !== undefined) otherIndex = `E11000 duplicate key error inserting ${missing}`;
      }
      if (otherIndex !== undefined) throw new DuplicateKeyError(otherIndex);
      return docs.filter((_, i) => !failedAt.has(i)).map((d) => d._id);
    }
  }

  async put(doc: T): Promise<void> {
    checkFilter(doc);
    await this.readModifyWrite(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.coll.replaceOne({ _id: doc._id }, doc, { upsert: true });
          return;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          // Two upserts of a new _id may race to insert it; the loser retries as a replace.
          if (err.code === DUPLICATE_KEY && clashIsOnId(err) !== false && attempt < UPSERT_RETRIES) {
            if ((await this.coll.countDocuments({ _id: doc._id }, { limit: 1 })) === 1) continue;
          }
          throw new DuplicateKeyError(err.message);
        }
      }
    });
  }

  async get(id: string): Promise<T | null> {
    return (await this.coll.findOne({ _id: id })) as T | null;
  }

  async getMany(ids: string[]): Promise<T[]> {
    if (ids.length === 0) return [];
    const unique = [...new Set(ids)];
    let docs: T[];
    if (this.pointLookups && unique.length <= MAX_POINT_LOOKUPS) {
      // FerretDB hands its backend an `_id` equality but never an `$in`, which reads the whole
      // collection. A few lookups by key in parallel cost far less.
      docs = (await Promise.all(unique.map((id) => this.coll.findOne({ _id: id })))).filter((d): d is Doc => d !== null) as T[];
    } else {
      docs = (await this.coll.find({ _id: { $in: unique } }).toArray()) as T[];
    }
    // Same order as the ids asked for, matching the SQLite adapter.
    const byId = new Map(docs.map((d) => [d._id, d]));
    const out: T[] = [];
    for (const id of unique) {
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
      const result = await this.readModifyWrite(() => this.coll.updateOne(filter, update));
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
      const result = await this.readModifyWrite(() => this.coll.updateMany(filter as MongoFilter<Doc>, { $set }));
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
    return (await this.readModifyWrite(() => this.coll.deleteMany(filter as MongoFilter<Doc>))).deletedCount;
  }
}

interface SequenceDoc {
  _id: string;
  value: number;
}

export interface MongoStoreOptions {
  /** How long to wait for a reachable server before an operation fails, in ms. */
  serverSelectionTimeoutMs?: number;
}

export class MongoDocumentStore implements DocumentStore {
  private readonly client: MongoClient;
  private readonly db: Db;
  private readonly lockPrefix: string;
  private connected: Promise<boolean> | undefined;
  private writeProfile?: () => void;

  constructor(url: string, options: MongoStoreOptions = {}) {
    // ignoreUndefined: optional fields left undefined are dropped, as the SQLite adapter does.
    const profileDir = process.env.ATRIUM_STORAGE_PROFILE;
    this.client = new MongoClient(url, {
      ignoreUndefined: true,
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? 10_000,
      monitorCommands: profileDir !== undefined && profileDir !== '',
    });
    if (profileDir) this.writeProfile = attachMongoProfile(this.client, profileDir);
    const dbName = mongoDatabaseName(url);
    this.db = this.client.db(dbName);
    const hosts = /^mongodb(?:\+srv)?:\/\/([^/?]*)/.exec(url)?.[1] ?? url;
    this.lockPrefix = `${hosts}/${dbName}.`;
  }

  /** Connects once; resolves to whether the server is FerretDB (its buildInfo carries ferretdbVersion). */
  private connect(): Promise<boolean> {
    this.connected ??= (async () => {
      await this.client.connect();
      const info = await this.db.command({ buildInfo: 1 });
      return 'ferretdbVersion' in info;
    })();
    // A failed connection is retried on the next call rather than remembered.
    this.connected.catch(() => {
      this.connected = undefined;
    });
    return this.connected;
  }

  private async serialiser(collection: string): Promise<Serialiser> {
    return (await this.connect()) ? serialiserFor(this.lockPrefix + collection) : direct;
  }

  async collection<T extends Doc>(spec: CollectionSpec): Promise<Collection<T>> {
    assertCollectionName(spec.name);
    const serialiser = await this.serialiser(spec.name);
    const isFerretDb = await this.connect();
    const coll = this.db.collection<Doc>(spec.name);
    for (const index of spec.indexes ?? []) {
      if (index.fields.length === 0) throw new Error(`index on ${spec.name} has no fields`);
      for (const field of index.fields) assertFieldName(field);
      const name = `${index.unique ? 'u' : 'i'}_${index.fields.join('__')}`;
      await coll.createIndex(Object.fromEntries(index.fields.map((f) => [f, 1 as const])), { name, unique: index.unique ?? false });
    }
    return new MongoDocCollection<T>(coll, serialiser, isFerretDb);
  }

  async nextSequence(name: string, increment = 1): Promise<number> {
    const serialise = await this.serialiser(SEQUENCES);
    const seqs = this.db.collection<SequenceDoc>(SEQUENCES);
    for (let attempt = 0; ; attempt++) {
      try {
        const doc = await serialise(() => seqs.findOneAndUpdate({ _id: name }, { $inc: { value: increment } }, { upsert: true, returnDocument: 'after' }));
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
    this.writeProfile?.();
    await this.client.close();
  }
}
