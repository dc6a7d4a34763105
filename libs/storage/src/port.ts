/**
 * The storage port: a narrow document store that both adapters (SQLite for the
 * embedded mode, MongoDB for the cluster) implement, and that every repository
 * is written against once.
 *
 * Rules it keeps (ARCHITECTURE.md, "Storage"): no multi-document transactions;
 * every write is idempotent or conditional; only top-level scalar fields are
 * queried; client-supplied JSON is stored as a string field, never as nested
 * documents (keys with dots and nested arrays stay byte-exact that way).
 */

/** A stored document: `_id` plus top-level fields of scalar (or string-array) values. */
export type Scalar = string | number | boolean | null;
export type FieldValue = Scalar | string[];
export interface Doc {
  _id: string;
  [field: string]: FieldValue | undefined;
}

/** Comparison on one top-level field. Equality when a plain value is given. */
export type Condition =
  | Scalar
  | { $eq?: Scalar; $ne?: Scalar; $gt?: number | string; $gte?: number | string; $lt?: number | string; $lte?: number | string; $in?: Scalar[]; $exists?: boolean };

/** All conditions must hold (AND). `{ field: 'x' }` is equality. */
export type Filter<T extends Doc = Doc> = { [K in keyof T & string]?: Condition };

export interface FindOptions<T extends Doc = Doc> {
  sort?: { [K in keyof T & string]?: 1 | -1 };
  limit?: number;
  skip?: number;
}

export interface IndexSpec {
  fields: string[];
  unique?: boolean;
}

export interface CollectionSpec {
  name: string;
  indexes?: IndexSpec[];
}

export interface Collection<T extends Doc> {
  /** Inserts unless `_id` exists. Returns false (and changes nothing) if it did: idempotent. Throws DuplicateKeyError on another unique index clash. */
  insert(doc: T): Promise<boolean>;
  /**
   * Inserts many documents in one round trip (one transaction on SQLite, one
   * unordered insertMany on MongoDB), each with `insert`'s rules: a document
   * whose `_id` is already stored (or appears earlier in `docs`) is skipped and
   * the stored one left unchanged. Returns the `_id`s it inserted, in the order
   * of `docs`, so a caller can tell new documents from replays. A clash with
   * another unique index does not stop the others: they are inserted, then
   * DuplicateKeyError is thrown. Not atomic across documents (the port has no
   * multi-document transactions), so callers retry the whole batch, which the
   * idempotence makes safe.
   */
  insertMany(docs: T[]): Promise<string[]>;
  /** Writes the whole document, replacing any with the same `_id`. */
  put(doc: T): Promise<void>;
  get(id: string): Promise<T | null>;
  getMany(ids: string[]): Promise<T[]>;
  findOne(filter: Filter<T>): Promise<T | null>;
  find(filter: Filter<T>, options?: FindOptions<T>): Promise<T[]>;
  count(filter: Filter<T>): Promise<number>;
  /**
   * Sets fields on the document `_id` if it also matches `where` (compare-and-set).
   * `unset` removes fields. Returns true if a document was changed.
   */
  update(id: string, set: Partial<T>, where?: Filter<T>, unset?: (keyof T & string)[]): Promise<boolean>;
  /** Sets fields on every matching document; returns how many matched. */
  updateMany(filter: Filter<T>, set: Partial<T>): Promise<number>;
  delete(id: string): Promise<boolean>;
  deleteMany(filter: Filter<T>): Promise<number>;
}

export interface DocumentStore {
  /** Opens (and creates on first use, with its indexes) a collection. */
  collection<T extends Doc>(spec: CollectionSpec): Promise<Collection<T>>;
  /**
   * Allocates the next value of a named monotonically increasing counter
   * (stream positions, ID suffixes). Atomic across processes.
   */
  nextSequence(name: string, increment?: number): Promise<number>;
  /** The current value of a counter without changing it (0 if never used). */
  currentSequence(name: string): Promise<number>;
  /** True if the backing database answers (used by /ready). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** Thrown when a write clashes with a unique index other than `_id`. */
export class DuplicateKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DuplicateKeyError';
  }
}
