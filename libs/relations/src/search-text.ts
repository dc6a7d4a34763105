import type { JsonObject } from '@atrium/matrix';

/**
 * Full-text matching for POST /search (client-server-api "Server Side
 * Search", category room_events), written for both storage adapters.
 *
 * Why matching happens in code: the storage port (libs/storage/src/port.ts)
 * offers equality and range conditions on top-level scalar fields only, and
 * the two backends' text search features (SQLite FTS5, MongoDB $text) do not
 * exist in FerretDB 1.x and cannot be expressed through the port. So the
 * search reads candidate events (the three searchable types) from the user's
 * rooms newest first, bounded per request, tokenises the searchable keys and
 * matches them here. Ranking is term frequency: the number of tokens in the
 * event that match a search term (so "cake cake" ranks above "cake"),
 * normalised by length so a long message is not favoured just for size.
 *
 * Tokens are lowercase runs of letters, marks and digits (Unicode-aware);
 * a search term matches a token equal to it or starting with it (so
 * "mart" finds "martians", as other servers' prefix queries do). Every term
 * must match (AND), as a search box's words usually mean.
 */

/** The searchable keys per event type (search.md "room_events"). */
export const SEARCH_KEYS = ['content.body', 'content.name', 'content.topic'] as const;
export type SearchKey = (typeof SEARCH_KEYS)[number];

/** The event types that carry the searchable keys. */
export const SEARCH_TYPES: Record<SearchKey, string> = {
  'content.body': 'm.room.message',
  'content.name': 'm.room.name',
  'content.topic': 'm.room.topic',
};

const TOKEN = /[\p{L}\p{M}\p{N}]+/gu;
/** Longest search term list taken from one request; longer ones are cut. */
export const MAX_TERMS = 16;

export function tokenize(text: string): string[] {
  return text.toLowerCase().match(TOKEN) ?? [];
}

/** The distinct search terms of a search_term string (at most MAX_TERMS). */
export function searchTerms(searchTerm: string): string[] {
  return [...new Set(tokenize(searchTerm))].slice(0, MAX_TERMS);
}

/**
 * The searchable text of an event for the requested keys: content.body of
 * m.room.message, content.name of m.room.name, content.topic of m.room.topic
 * "as well as the body of the text/plain representation in content['m.topic']".
 */
export function searchableText(type: string, content: JsonObject, keys: ReadonlySet<SearchKey>): string {
  const parts: string[] = [];
  const str = (v: unknown): void => {
    if (typeof v === 'string') parts.push(v);
  };
  if (type === 'm.room.message' && keys.has('content.body')) str(content['body']);
  if (type === 'm.room.name' && keys.has('content.name')) str(content['name']);
  if (type === 'm.room.topic' && keys.has('content.topic')) {
    str(content['topic']);
    const topic = content['m.topic'];
    if (topic && typeof topic === 'object' && !Array.isArray(topic)) {
      const text = (topic as JsonObject)['m.text'];
      if (Array.isArray(text)) {
        for (const rep of text) {
          if (rep && typeof rep === 'object' && !Array.isArray(rep) && (rep['mimetype'] === undefined || rep['mimetype'] === 'text/plain')) str(rep['body']);
        }
      }
    }
  }
  return parts.join('\n');
}

export interface TextMatch {
  /** Term frequency, length-normalised; higher is closer. */
  rank: number;
  /** The event's tokens that matched a term (for `highlights`). */
  matched: string[];
}

/** Whether `text` matches every term, and how well. */
export function matchText(text: string, terms: readonly string[]): TextMatch | null {
  if (terms.length === 0) return null;
  const tokens = tokenize(text);
  if (tokens.length === 0) return null;
  let hits = 0;
  const matched = new Set<string>();
  for (const term of terms) {
    let termHits = 0;
    for (const token of tokens) {
      if (token.startsWith(term)) {
        termHits++;
        matched.add(token);
      }
    }
    if (termHits === 0) return null;
    hits += termHits;
  }
  // Frequency over the square root of the length: repeated terms count, long texts do not win by size alone.
  const rank = hits / Math.sqrt(tokens.length);
  return { rank: Math.round(rank * 1e6) / 1e6, matched: [...matched] };
}
