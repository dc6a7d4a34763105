/**
 * SQLite adapter of the storage port (embedded mode), on Node's built-in
 * `node:sqlite` (no native addon to compile).
 *
 * Layout: one table per collection, `_id TEXT PRIMARY KEY, doc TEXT` where
 * `doc` is the document without `_id` as JSON text. Declared indexes are
 * expression indexes on `json_extract(doc, '$."field"')`; every filter and
 * sort compiles to exactly that expression so the planner can use them.
 * Counters live in one `_sequences` table and are bumped with a single
 * upsert ... RETURNING statement, which SQLite's write lock makes atomic across
 * processes sharing the file.
 *
 * Semantics follow MongoDB's where the port leaves room: equality with null
 * and `$in` containing null also match a missing field, `$ne` matches a
 * missing field, `$exists` tells a stored null from a missing field.
 * Known difference: a unique index ignores documents whose field is missing
 * (MongoDB treats them as null, so two such documents clash there); callers
 * must not rely on either behaviour.
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { Collection, CollectionSpec, Condition, Doc, DocumentStore, FieldValue, Filter, FindOptions, IndexSpec, Scalar } from './port';
import { DuplicateKeyError } from './port';
import { assertCollectionName, assertFieldName, definedEntries } from './names';

/** SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY extended result codes. */
const SQLITE_CONSTRAINT_UNIQUE = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;

/** Distinct SQL texts kept prepared; filters of a few shapes per collection stay far below this. */
const STATEMENT_CACHE_LIMIT = 512;

export interface SqliteStoreOptions {
  /** How long a write waits for another connection's lock, in ms. */
  busyTimeoutMs?: number;
}

/** Binds a port value as an SQL value comparable with what json_extract returns. */
function sqlValue(value: Scalar): SQLInputValue {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The SQL expression for a top-level field; identical text in indexes and queries. */
function fieldExpr(field: string): string {
  if (field === '_id') return '_id';
  assertFieldName(field);
  return `json_extract(doc, '$."${field}"')`;
}

function fieldPath(field: string): string {
  assertFieldName(field);
  return `$."${field}"`;
}

/** Checked by shape, not instanceof: node:sqlite's errors come from another realm under Jest's VM. */
function isConstraintError(err: unknown): err is { errcode: number; message: string } {
  if (typeof err !== 'object' || err === null || !('errcode' in err)) return false;
  return err.errcode === SQLITE_CONSTRAINT_UNIQUE || err.errcode === SQLITE_CONSTRAINT_PRIMARYKEY;
}

interface CompiledWhere {
  sql: string;
  params: SQLInputValue[];
}

function compileCondition(field: string, cond: Condition, out: string[], params: SQLInputValue[]): void {
  const expr = fieldExpr(field);
  if (cond === null || typeof cond !== 'object') {
    if (cond === null) {
      out.push(`${expr} IS NULL`);
    } else {
      out.push(`${expr} = ?`);
      params.push(sqlValue(cond));
    }
    return;
  }
  for (const [op, value] of Object.entries(cond)) {
    if (value === undefined) continue;
    switch (op) {
      case '$eq':
        compileCondition(field, value as Scalar, out, params);
        break;
      case '$ne':
        // IS NOT is SQLite's null-safe inequality: a missing field matches, as in MongoDB.
        out.push(`${expr} IS NOT ?`);
        params.push(sqlValue(value as Scalar));
        break;
      case '$gt':
      case '$gte':
      case '$lt':
      case '$lte': {
        const sqlOp = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }[op];
        out.push(`${expr} ${sqlOp} ?`);
        params.push(sqlValue(value as number | string));
        break;
      }
      case '$in': {
        const list = value as Scalar[];
        const nonNull = list.filter((v) => v !== null);
        const parts: string[] = [];
        if (nonNull.length > 0) {
          parts.push(`${expr} IN (${nonNull.map(() => '?').join(', ')})`);
          for (const v of nonNull) params.push(sqlValue(v));
        }
        if (nonNull.length !== list.length) parts.push(`${expr} IS NULL`);
        out.push(parts.length === 0 ? '0' : parts.length === 1 ? parts[0] : `(${parts.join(' OR ')})`);
        break;
      }
      case '$exists':
        if (field === '_id') {
          out.push(value ? '1' : '0');
        } else {
          // json_type is 'null' for a stored null and SQL NULL only when the key is absent.
          out.push(`json_type(doc, '${fieldPath(field)}') IS ${value ? 'NOT NULL' : 'NULL'}`);
        }
        break;
      default:
        throw new Error(`unsupported filter operator ${op} on ${field}`);
    }
  }
}

function compileFilter(filter: Filter): CompiledWhere {
  const clauses: string[] = [];
  const params: SQLInputValue[] = [];
  for (const [field, cond] of definedEntries(filter)) compileCondition(field, cond as Condition, clauses, params);
  return { sql: clauses.length === 0 ? '1' : clauses.join(' AND '), params };
}

function compileOrder(sort: FindOptions['sort']): string {
  if (!sort) return '';
  const parts = definedEntries(sort).map(([field, dir]) => `${fieldExpr(field)} ${dir === -1 ? 'DESC' : 'ASC'}`);
  return parts.length === 0 ? '' : ` ORDER BY ${parts.join(', ')}`;
}

function splitDoc(doc: Doc): { id: string; body: string } {
  const { _id, ...rest } = doc;
  if (typeof _id !== 'string') throw new Error('document _id must be a string');
  const body: Record<string, FieldValue> = {};
  for (const [k, v] of definedEntries(rest)) {
    assertFieldName(k);
    body[k] = v as FieldValue;
  }
  return { id: _id, body: JSON.stringify(body) };
}

interface Row {
  _id: string;
  doc: string;
}

function rowToDoc<T extends Doc>(row: Row): T {
  return { _id: row._id, ...(JSON.parse(row.doc) as Omit<T, '_id'>) } as T;
}

class SqliteCollection<T extends Doc> implements Collection<T> {
  private readonly table: string;

  constructor(
    private readonly store: SqliteDocumentStore,
    name: string,
  ) {
    this.table = quoteIdent(`c_${name}`);
  }

  async insert(doc: T): Promise<boolean> {
    const { id, body } = splitDoc(doc);
    const result = this.write(`INSERT INTO ${this.table} (_id, doc) VALUES (?, ?) ON CONFLICT (_id) DO NOTHING`, [id, body]);
    return result.changes === 1;
  }

  async insertMany(docs: T[]): Promise<string[]> {
    if (docs.length === 0) return [];
    // Every document is checked before anything is written, so a bad field name stores nothing.
    const rows = docs.map(splitDoc);
    const stmt = this.store.statement(`INSERT INTO ${this.table} (_id, doc) VALUES (?, ?) ON CONFLICT (_id) DO NOTHING`);
    const inserted: string[] = [];
    let clash: string | undefined;
    // One transaction: one fsync and one lock for the batch instead of one per row.
    // A constraint error aborts only its own statement, so the others still commit.
    this.store.transaction(() => {
      for (const { id, body } of rows) {
        try {
          if (stmt.run(id, body).changes === 1) inserted.push(id);
        } catch (err) {
          if (!isConstraintError(err)) throw err;
          clash ??= String(err.message);
        }
      }
    });
    if (clash !== undefined) throw new DuplicateKeyError(clash);
    return inserted;
  }

  async put(doc: T): Promise<void> {
    const { id, body } = splitDoc(doc);
    this.write(`INSERT INTO ${this.table} (_id, doc) VALUES (?, ?) ON CONFLICT (_id) DO UPDATE SET doc = excluded.doc`, [id, body]);
  }

  async get(id: string): Promise<T | null> {
    const row = this.store.statement(`SELECT _id, doc FROM ${this.table} WHERE _id = ?`).get(id) as Row | undefined;
    return row ? rowToDoc<T>(row) : null;
  }

  async getMany(ids: string[]): Promise<T[]> {
    if (ids.length === 0) return [];
    // One cached statement for any number of ids: the list travels as one JSON parameter.
    const rows = this.store
      .statement(`SELECT _id, doc FROM ${this.table} WHERE _id IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(ids)) as unknown as Row[];
    const byId = new Map(rows.map((r) => [r._id, r]));
    const out: T[] = [];
    const seen = new Set<string>();
    for (const id of ids) {
      const row = byId.get(id);
      if (row && !seen.has(id)) {
        seen.add(id);
        out.push(rowToDoc<T>(row));
      }
    }
    return out;
  }

  async findOne(filter: Filter<T>): Promise<T | null> {
    const [doc] = await this.find(filter, { limit: 1 });
    return doc ?? null;
  }

  async find(filter: Filter<T>, options: FindOptions<T> = {}): Promise<T[]> {
    const where = compileFilter(filter as Filter);
    const params = [...where.params];
    let sql = `SELECT _id, doc FROM ${this.table} WHERE ${where.sql}${compileOrder(options.sort as FindOptions['sort'])}`;
    if (options.limit !== undefined || options.skip !== undefined) {
      sql += ' LIMIT ? OFFSET ?';
      // A negative LIMIT means no limit in SQLite; MongoDB's limit 0 also means none.
      params.push(options.limit && options.limit > 0 ? options.limit : -1, options.skip ?? 0);
    }
    const rows = this.store.statement(sql).all(...params) as unknown as Row[];
    return rows.map((r) => rowToDoc<T>(r));
  }

  async count(filter: Filter<T>): Promise<number> {
    const where = compileFilter(filter as Filter);
    const row = this.store.statement(`SELECT COUNT(*) AS n FROM ${this.table} WHERE ${where.sql}`).get(...where.params) as { n: number };
    return row.n;
  }

  async update(id: string, set: Partial<T>, where?: Filter<T>, unset?: (keyof T & string)[]): Promise<boolean> {
    const { sql: setSql, params: setParams } = this.compileSet(set, unset ?? []);
    const cond = compileFilter((where ?? {}) as Filter);
    const result = this.write(`UPDATE ${this.table} SET doc = ${setSql} WHERE _id = ? AND ${cond.sql}`, [...setParams, id, ...cond.params]);
    return result.changes === 1;
  }

  async updateMany(filter: Filter<T>, set: Partial<T>): Promise<number> {
    const { sql: setSql, params: setParams } = this.compileSet(set, []);
    const cond = compileFilter(filter as Filter);
    const result = this.write(`UPDATE ${this.table} SET doc = ${setSql} WHERE ${cond.sql}`, [...setParams, ...cond.params]);
    return Number(result.changes);
  }

  async delete(id: string): Promise<boolean> {
    return this.write(`DELETE FROM ${this.table} WHERE _id = ?`, [id]).changes === 1;
  }

  async deleteMany(filter: Filter<T>): Promise<number> {
    const cond = compileFilter(filter as Filter);
    return Number(this.write(`DELETE FROM ${this.table} WHERE ${cond.sql}`, cond.params).changes);
  }

  /** Builds `json_remove(json_set(doc, path, json(?), ...), path, ...)`; values travel as JSON text so types stay exact. */
  private compileSet(set: Partial<T>, unset: string[]): { sql: string; params: SQLInputValue[] } {
    let sql = 'doc';
    const params: SQLInputValue[] = [];
    const entries = definedEntries(set as Record<string, unknown>);
    if (entries.length > 0) {
      const args: string[] = [];
      for (const [field, value] of entries) {
        if (field === '_id') throw new Error('update cannot change _id');
        args.push(`'${fieldPath(field)}', json(?)`);
        params.push(JSON.stringify(value));
      }
      sql = `json_set(${sql}, ${args.join(', ')})`;
    }
    if (unset.length > 0) {
      sql = `json_remove(${sql}, ${unset.map((f) => `'${fieldPath(f)}'`).join(', ')})`;
    }
    return { sql, params };
  }

  private write(sql: string, params: SQLInputValue[]): { changes: number | bigint } {
    try {
      return this.store.statement(sql).run(...params);
    } catch (err) {
      if (isConstraintError(err)) throw new DuplicateKeyError(String(err.message));
      throw err;
    }
  }
}

export class SqliteDocumentStore implements DocumentStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  private readonly collections = new Map<string, SqliteCollection<Doc>>();

  /** `path` is a file path or `:memory:`. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 });
    if (path !== ':memory:') {
      // WAL lets readers run beside the writer; NORMAL sync is safe with WAL
      // (a power cut may drop the last commits, never corrupt the file).
      this.db.exec('PRAGMA journal_mode = WAL');
      this.db.exec('PRAGMA synchronous = NORMAL');
    }
    this.db.exec('CREATE TABLE IF NOT EXISTS _sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT');
  }

  /** Returns a prepared statement for `sql`, prepared once and kept. */
  statement(sql: string): StatementSync {
    let stmt = this.statements.get(sql);
    if (stmt) {
      // Map order is insertion order: re-insert to keep recently used statements at the end.
      this.statements.delete(sql);
    } else {
      stmt = this.db.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_LIMIT) {
        const oldest = this.statements.keys().next().value;
        if (oldest !== undefined) this.statements.delete(oldest);
      }
    }
    this.statements.set(sql, stmt);
    return stmt;
  }

  /**
   * Runs `fn` (synchronous, so nothing else in this process interleaves) in one
   * write transaction; rolls back if it throws. BEGIN IMMEDIATE takes the write
   * lock up front so another process's writer makes it wait (busy timeout)
   * rather than fail half-way.
   */
  transaction(fn: () => void): void {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      fn();
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  async collection<T extends Doc>(spec: CollectionSpec): Promise<Collection<T>> {
    assertCollectionName(spec.name);
    const existing = this.collections.get(spec.name);
    const table = quoteIdent(`c_${spec.name}`);
    this.db.exec(`CREATE TABLE IF NOT EXISTS ${table} (_id TEXT PRIMARY KEY, doc TEXT NOT NULL) STRICT`);
    for (const index of spec.indexes ?? []) this.db.exec(this.indexSql(spec.name, index));
    if (existing) return existing as unknown as Collection<T>;
    const created = new SqliteCollection<Doc>(this, spec.name);
    this.collections.set(spec.name, created);
    return created as unknown as Collection<T>;
  }

  private indexSql(collection: string, index: IndexSpec): string {
    if (index.fields.length === 0) throw new Error(`index on ${collection} has no fields`);
    const name = quoteIdent(`${index.unique ? 'u' : 'i'}_${collection}__${index.fields.join('__')}`);
    const exprs = index.fields.map(fieldExpr).join(', ');
    return `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${name} ON ${quoteIdent(`c_${collection}`)} (${exprs})`;
  }

  async nextSequence(name: string, increment = 1): Promise<number> {
    const row = this.statement(
      'INSERT INTO _sequences (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value',
    ).get(name, increment) as { value: number };
    return row.value;
  }

  async currentSequence(name: string): Promise<number> {
    const row = this.statement('SELECT value FROM _sequences WHERE name = ?').get(name) as { value: number } | undefined;
    return row?.value ?? 0;
  }

  /** The query plan for a find, for tests that check indexes are used. */
  explainFind(collection: string, filter: Filter, options: FindOptions = {}): string[] {
    const where = compileFilter(filter);
    const sql = `EXPLAIN QUERY PLAN SELECT _id, doc FROM ${quoteIdent(`c_${collection}`)} WHERE ${where.sql}${compileOrder(options.sort)}`;
    return (this.db.prepare(sql).all(...where.params) as unknown as { detail: string }[]).map((r) => r.detail);
  }

  async ping(): Promise<boolean> {
    try {
      this.statement('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.statements.clear();
    if (this.db.isOpen) this.db.close();
  }
}
