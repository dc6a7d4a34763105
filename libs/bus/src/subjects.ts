/**
 * NATS subject rules, shared by the in-process adapter so that both adapters
 * route the same way: subjects are dot-separated tokens; in a pattern `*`
 * matches exactly one token and `>` (last token only) matches one or more.
 */

/** True if `subject` (no wildcards) is matched by `pattern` (wildcards allowed). */
export function subjectMatches(pattern: string, subject: string): boolean {
  const want = pattern.split('.');
  const have = subject.split('.');
  for (let i = 0; i < want.length; i++) {
    const token = want[i];
    if (token === '>') return i === want.length - 1 && have.length > i;
    if (i >= have.length) return false;
    if (token !== '*' && token !== have[i]) return false;
  }
  return want.length === have.length;
}

/** Rejects what NATS rejects: empty tokens, whitespace, and wildcards in a subject messages are sent to. */
export function assertValidSubject(subject: string, allowWildcards: boolean): void {
  const tokens = subject.split('.');
  const bad = tokens.some((token, i) => {
    if (token === '' || /\s/.test(token)) return true;
    if (token === '*' || (token === '>' && i === tokens.length - 1)) return !allowWildcards;
    return token.includes('*') || token.includes('>');
  });
  if (bad) throw new Error(`invalid subject ${JSON.stringify(subject)}`);
}

/** True if some subject is matched by both patterns (two streams may not capture the same subject). */
export function subjectsOverlap(a: string, b: string): boolean {
  const left = a.split('.');
  const right = b.split('.');
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] === '>' || right[i] === '>') return true;
    if (left[i] !== '*' && right[i] !== '*' && left[i] !== right[i]) return false;
  }
  return left.length === right.length;
}
