/**
 * Pure parts of GET /rooms/{roomId}/hierarchy (space_hierarchy.yaml, module
 * spaces.md): which m.space.child events count and in what order children
 * are visited, and the pagination token.
 */

export interface ChildEvent {
  state_key: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
  sender: string;
}

/**
 * "Invalid child rooms ... are not covered": an m.space.child counts when its
 * state key is a room ID and `via` is present and non-empty ("Children where
 * `via` is not present or invalid (not an array) are ignored", and an empty
 * `via` removes the child).
 */
export function isValidChild(event: ChildEvent): boolean {
  const via = event.content['via'];
  return event.state_key.startsWith('!') && Array.isArray(via) && via.length > 0 && via.every((v) => typeof v === 'string');
}

/** spaces.md: `order` is a string of at most 50 characters in the range \x20 (space) to \x7E (~). */
function validOrder(order: unknown): string | undefined {
  return typeof order === 'string' && order.length <= 50 && /^[\x20-\x7E]*$/.test(order) ? order : undefined;
}

/**
 * spaces.md "Ordering": children with a valid `order` first, by `order`
 * (lexicographic on code units); then by the m.space.child event's
 * origin_server_ts, then by room ID.
 */
export function orderChildren<T extends ChildEvent>(children: readonly T[]): T[] {
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...children].sort((a, b) => {
    const oa = validOrder(a.content['order']);
    const ob = validOrder(b.content['order']);
    if (oa !== undefined && ob === undefined) return -1;
    if (oa === undefined && ob !== undefined) return 1;
    if (oa !== undefined && ob !== undefined && oa !== ob) return cmp(oa, ob);
    if (a.origin_server_ts !== b.origin_server_ts) return a.origin_server_ts - b.origin_server_ts;
    return cmp(a.state_key, b.state_key);
  });
}

/** The pagination token: rooms already given, and the parameters it was made with ("cannot be changed from the first request"). */
export interface HierarchyToken {
  offset: number;
  suggestedOnly: boolean;
  maxDepth: number;
}

export function formatHierarchyToken(token: HierarchyToken): string {
  return `h${token.offset}_${token.suggestedOnly ? 1 : 0}_${token.maxDepth}`;
}

export function parseHierarchyToken(text: string): HierarchyToken | undefined {
  const match = /^h(\d{1,9})_([01])_(\d{1,9})$/.exec(text);
  if (!match) return undefined;
  return { offset: Number(match[1]), suggestedOnly: match[2] === '1', maxDepth: Number(match[3]) };
}
