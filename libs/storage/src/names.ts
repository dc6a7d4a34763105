/**
 * Name checks shared by both adapters. Field and collection names end up in
 * SQL text (SQLite) and in MongoDB field paths, so only plain identifiers are
 * accepted: no dots (MongoDB paths), no `$` (operators), no quotes (SQL).
 */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function assertFieldName(name: string): void {
  if (!IDENTIFIER.test(name)) throw new Error(`invalid field name ${JSON.stringify(name)}: use letters, digits and _`);
}

export function assertCollectionName(name: string): void {
  if (!IDENTIFIER.test(name) || name.startsWith('_')) {
    throw new Error(`invalid collection name ${JSON.stringify(name)}: use letters, digits and _, not starting with _`);
  }
}

/** Entries whose value is not undefined (optional keys left unset are ignored, as the port's Partial types allow). */
export function definedEntries<V>(obj: { [key: string]: V | undefined }): [string, V][] {
  return Object.entries(obj).filter((e): e is [string, V] => e[1] !== undefined);
}
