/**
 * Canonical JSON encoding and a strict JSON parser.
 * Spec: content/appendices.md ("Canonical JSON", its "Grammar"), and the room
 * version fragments content/rooms/fragments/v1-canonical-json.md (rooms v1–v5
 * MUST NOT enforce the number rules) and v6-canonical-json.md (rooms v6+ MUST
 * enforce them: M_BAD_JSON on the client API, discard over federation).
 */
import type { JsonValue } from './events/pdu';

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/** The value cannot be encoded as canonical JSON (float, out-of-range integer, lone surrogate, non-JSON type). */
export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
}

export interface CanonicalJsonOptions {
  /**
   * appendices.md "Canonical JSON": numbers "must be integers in the range
   * [-(2**53)+1, (2**53)-1]". True (the default) throws on anything else.
   * False is for events of room versions 1–5, whose warning box says servers
   * SHOULD cope with JSON that breaks these rules: integers outside the range
   * are written out in full, other numbers as JavaScript prints them.
   */
  strict?: boolean;
}

const MAX_DEPTH_ENCODE = 1024;

/** `String.prototype.isWellFormed` (ES2024, Node 20+); the project's lib is ES2023. */
function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * The string escapes of the canonical grammar are exactly what JSON.stringify
 * produces for well-formed strings: `\b \t \n \f \r \" \\`, `\u00XX` in
 * lowercase hex for the other controls, and every other code point as itself
 * (UTF-8 once the result is encoded). A lone surrogate has no UTF-8 encoding,
 * so it cannot appear in canonical JSON.
 */
function encodeString(s: string): string {
  if (!isWellFormed(s)) throw new CanonicalJsonError('string contains a lone UTF-16 surrogate');
  return JSON.stringify(s);
}

function encodeNumber(n: number, strict: boolean): string {
  // String(-0) is "0": "negative zero -0 MUST NOT appear".
  if (Number.isSafeInteger(n)) return String(n);
  if (!Number.isFinite(n)) throw new CanonicalJsonError(`${n} is not a JSON number`);
  if (strict) {
    throw new CanonicalJsonError(
      Number.isInteger(n) ? `integer ${n} is outside [-(2^53)+1, 2^53-1]` : `${n} is not an integer`,
    );
  }
  // Lenient (rooms v1–v5): no exponent for integral values, as the sender's
  // JSON library would have written the integer it held.
  return Number.isInteger(n) ? BigInt(n).toString() : String(n);
}

/** Keys ordered by Unicode code point. Default sort compares UTF-16 code units, which differs only for astral characters. */
function sortKeys(keys: string[]): string[] {
  let astral = false;
  for (let i = 0; i < keys.length; i++) {
    if (/[\uD800-\uDFFF]/.test(keys[i])) {
      astral = true;
      break;
    }
  }
  if (!astral) return keys.sort();
  return keys.sort((a, b) => {
    const ca = Array.from(a);
    const cb = Array.from(b);
    const n = Math.min(ca.length, cb.length);
    for (let i = 0; i < n; i++) {
      const d = (ca[i].codePointAt(0) as number) - (cb[i].codePointAt(0) as number);
      if (d !== 0) return d;
    }
    return ca.length - cb.length;
  });
}

function encodeValue(value: unknown, strict: boolean, depth: number): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      return encodeNumber(value, strict);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH_ENCODE) throw new CanonicalJsonError('value is nested too deeply');
      if (Array.isArray(value)) {
        if (value.length === 0) return '[]';
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw new CanonicalJsonError('arrays cannot hold undefined');
          if (i > 0) out += ',';
          out += encodeValue(item, strict, depth + 1);
        }
        return out + ']';
      }
      // A plain object's prototype is null or an Object.prototype — of any
      // realm: JSON parsed by fetch() or in a vm context has another realm's.
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null && Object.getPrototypeOf(proto) !== null) {
        throw new CanonicalJsonError('only plain objects, arrays, strings, numbers, booleans and null are JSON');
      }
      const record = value as Record<string, unknown>;
      const keys = sortKeys(Object.keys(record));
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        // An absent optional property (e.g. Pdu.state_key) is simply not there.
        if (item === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += encodeString(key);
        out += ':';
        out += encodeValue(item, strict, depth + 1);
      }
      return out + '}';
    }
    default:
      throw new CanonicalJsonError(`${typeof value} is not a JSON value`);
  }
}

/**
 * Canonical JSON of `value` (appendices.md "Canonical JSON"): keys sorted by
 * code point, no insignificant whitespace, the grammar's escapes, integers
 * without exponent or fraction. Returns a JS string; its UTF-8 bytes are the
 * canonical bytes (`Buffer.from(s, 'utf8')`). Properties whose value is
 * `undefined` are left out, as if absent.
 */
export function canonicalJson(value: unknown, options?: CanonicalJsonOptions): string {
  return encodeValue(value, options?.strict ?? true, 0);
}

/** canonicalJson as UTF-8 bytes: what gets hashed and signed. */
export function canonicalJsonBytes(value: unknown, options?: CanonicalJsonOptions): Buffer {
  return Buffer.from(encodeValue(value, options?.strict ?? true, 0), 'utf8');
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/**
 * Why the text was refused. `errcode` is what a client-server endpoint
 * answers: M_NOT_JSON when it is not JSON at all, M_BAD_JSON when it is JSON
 * that Matrix does not accept (duplicate keys, and in strict mode floats and
 * out-of-range integers; v6-canonical-json.md: "400 M_BAD_JSON").
 */
export type JsonParseErrorReason =
  | 'invalid-utf8'
  | 'syntax'
  | 'duplicate-key'
  | 'lone-surrogate'
  | 'float'
  | 'integer-range'
  | 'too-deep';

export class JsonParseError extends Error {
  override readonly name = 'JsonParseError';
  readonly errcode: 'M_NOT_JSON' | 'M_BAD_JSON';
  constructor(
    readonly reason: JsonParseErrorReason,
    message: string,
    /** Offset (in UTF-16 code units of the decoded text) where the problem was found. */
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
    this.errcode = reason === 'invalid-utf8' || reason === 'syntax' ? 'M_NOT_JSON' : 'M_BAD_JSON';
  }
}

export interface StrictJsonOptions {
  /**
   * Rooms v6+ and new data (v6-canonical-json.md): refuse numbers with a
   * fraction or exponent and integers outside [-(2^53)+1, 2^53-1]. Without it
   * (rooms v1–v5), such numbers are read as JavaScript numbers.
   */
  strict: boolean;
  /** Deepest nesting of arrays/objects accepted (default 512); deeper is M_BAD_JSON. */
  maxDepth?: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const hasOwn = Object.prototype.hasOwnProperty;

class Parser {
  pos = 0;
  constructor(
    private readonly text: string,
    private readonly strict: boolean,
    private readonly maxDepth: number,
  ) {}

  fail(reason: JsonParseErrorReason, message: string, at = this.pos): never {
    throw new JsonParseError(reason, message, at);
  }

  skipWhitespace(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  parseValue(depth: number): JsonValue {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: // {
        return this.parseObject(depth + 1);
      case 0x5b: // [
        return this.parseArray(depth + 1);
      case 0x22: // "
        return this.parseString();
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
        if (Number.isNaN(c)) this.fail('syntax', 'unexpected end of input');
        return this.fail('syntax', `unexpected character ${JSON.stringify(this.text[this.pos])}`);
    }
  }

  literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail('syntax', 'invalid literal');
    this.pos += word.length;
    return value;
  }

  parseObject(depth: number): JsonValue {
    if (depth > this.maxDepth) this.fail('too-deep', 'JSON nested too deeply');
    this.pos++; // {
    const obj: { [key: string]: JsonValue } = {};
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return obj;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail('syntax', 'expected a string key');
      const keyAt = this.pos;
      const key = this.parseString();
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail('syntax', "expected ':'");
      this.pos++;
      const value = this.parseValue(depth);
      if (hasOwn.call(obj, key)) this.fail('duplicate-key', `duplicate key ${JSON.stringify(key)}`, keyAt);
      if (key === '__proto__') {
        // A plain assignment would set the prototype; JSON.parse makes an own property.
        Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        obj[key] = value;
      }
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x2c) continue;
      if (c === 0x7d) return obj;
      this.fail('syntax', "expected ',' or '}'", this.pos - 1);
    }
  }

  parseArray(depth: number): JsonValue {
    if (depth > this.maxDepth) this.fail('too-deep', 'JSON nested too deeply');
    this.pos++; // [
    const arr: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return arr;
    }
    for (;;) {
      arr.push(this.parseValue(depth));
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x2c) continue;
      if (c === 0x5d) return arr;
      this.fail('syntax', "expected ',' or ']'", this.pos - 1);
    }
  }

  parseString(): string {
    const t = this.text;
    const start = this.pos + 1;
    let p = start;
    let surrogates = false;
    // Fast path: no escapes.
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x22) {
        this.pos = p + 1;
        const s = t.slice(start, p);
        if (surrogates && !isWellFormed(s)) this.fail('lone-surrogate', 'string contains a lone surrogate', start);
        return s;
      }
      if (c === 0x5c) break;
      if (c < 0x20 || Number.isNaN(c)) this.stringCharError(c, p);
      if (c >= 0xd800 && c <= 0xdfff) surrogates = true;
      p++;
    }
    // Slow path: escapes. Unescaped runs are copied in one slice each.
    let out = t.slice(start, p);
    let run = p;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x22) {
        out += t.slice(run, p);
        this.pos = p + 1;
        if (surrogates && !isWellFormed(out)) this.fail('lone-surrogate', 'string contains a lone surrogate', start);
        return out;
      }
      if (c === 0x5c) {
        out += t.slice(run, p);
        const e = t.charCodeAt(p + 1);
        switch (e) {
          case 0x22: out += '"'; break;
          case 0x5c: out += '\\'; break;
          case 0x2f: out += '/'; break;
          case 0x62: out += '\b'; break;
          case 0x66: out += '\f'; break;
          case 0x6e: out += '\n'; break;
          case 0x72: out += '\r'; break;
          case 0x74: out += '\t'; break;
          case 0x75: {
            const hex = t.slice(p + 2, p + 6);
            if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.fail('syntax', 'invalid \\u escape', p);
            const unit = parseInt(hex, 16);
            if (unit >= 0xd800 && unit <= 0xdfff) surrogates = true;
            out += String.fromCharCode(unit);
            p += 4;
            break;
          }
          default:
            this.fail('syntax', 'invalid escape', p);
        }
        p += 2;
        run = p;
        continue;
      }
      if (c < 0x20 || Number.isNaN(c)) this.stringCharError(c, p);
      if (c >= 0xd800 && c <= 0xdfff) surrogates = true;
      p++;
    }
  }

  stringCharError(c: number, p: number): never {
    if (Number.isNaN(c)) this.fail('syntax', 'unterminated string', p);
    return this.fail('syntax', 'unescaped control character in string', p);
  }

  parseNumber(): number {
    const t = this.text;
    const start = this.pos;
    let p = start;
    if (t.charCodeAt(p) === 0x2d) p++;
    let c = t.charCodeAt(p);
    if (c === 0x30) {
      p++;
    } else if (c >= 0x31 && c <= 0x39) {
      do p++;
      while ((c = t.charCodeAt(p)) >= 0x30 && c <= 0x39);
    } else {
      this.fail('syntax', 'invalid number', start);
    }
    let integer = true;
    c = t.charCodeAt(p);
    if (c === 0x2e) {
      integer = false;
      p++;
      c = t.charCodeAt(p);
      if (!(c >= 0x30 && c <= 0x39)) this.fail('syntax', 'invalid number', start);
      while ((c = t.charCodeAt(p)) >= 0x30 && c <= 0x39) p++;
    }
    if (c === 0x65 || c === 0x45) {
      integer = false;
      p++;
      c = t.charCodeAt(p);
      if (c === 0x2b || c === 0x2d) p++;
      c = t.charCodeAt(p);
      if (!(c >= 0x30 && c <= 0x39)) this.fail('syntax', 'invalid number', start);
      while ((c = t.charCodeAt(p)) >= 0x30 && c <= 0x39) p++;
    }
    this.pos = p;
    const value = Number(t.slice(start, p));
    if (this.strict) {
      if (!integer) this.fail('float', 'numbers must be integers', start);
      // Rounding is monotonic and 2^53 is exact, so any integer beyond the
      // range parses to a magnitude of at least 2^53.
      if (value > MAX_SAFE || value < -MAX_SAFE) this.fail('integer-range', 'integer outside [-(2^53)+1, 2^53-1]', start);
    } else if (!Number.isFinite(value)) {
      this.fail('integer-range', 'number too large', start);
    }
    // "-0" reads as 0: canonical JSON has no negative zero.
    return value === 0 ? 0 : value;
  }
}

/**
 * Parses JSON as Matrix accepts it: RFC 8259 syntax (so no NaN, Infinity,
 * comments or trailing commas), no duplicate keys in an object, no lone
 * surrogates (they cannot be canonical JSON), and with `strict` the number
 * rules of canonical JSON. Bytes are decoded as UTF-8 first and invalid UTF-8
 * is refused. Throws JsonParseError, whose `errcode` is the answer to give.
 */
export function parseStrictJson(input: string | Uint8Array, options: StrictJsonOptions): JsonValue {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8Decoder.decode(input);
    } catch {
      throw new JsonParseError('invalid-utf8', 'body is not valid UTF-8', 0);
    }
  }
  const parser = new Parser(text, options.strict, options.maxDepth ?? 512);
  const value = parser.parseValue(0);
  parser.skipWhitespace();
  if (parser.pos !== text.length) parser.fail('syntax', 'unexpected data after the JSON value');
  return value;
}
