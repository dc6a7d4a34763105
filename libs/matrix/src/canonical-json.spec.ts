/**
 * Canonical JSON (content/appendices.md "Canonical JSON", its "Examples" and
 * "Grammar") and the strict parser (rooms/fragments/v6-canonical-json.md).
 */
import fc from 'fast-check';
import { CanonicalJsonError, JsonParseError, canonicalJson, canonicalJsonBytes, parseStrictJson } from './canonical-json';
import type { JsonValue } from './events/pdu';

/** appendices.md "Examples": the input text is parsed, then encoded. */
const SPEC_EXAMPLES: Array<[string, string]> = [
  ['{}', '{}'],
  ['{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'],
  ['{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'],
  ['{"b":"2","a":"1"}', '{"a":"1","b":"2"}'],
  [
    `{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}`,
    '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
  ],
  ['{\n    "a": "日本語"\n}', '{"a":"日本語"}'],
  ['{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'],
  ['{\n    "a": "\\u65E5"\n}', '{"a":"日"}'],
  ['{\n    "a": null\n}', '{"a":null}'],
];

describe('canonicalJson: the spec examples', () => {
  it.each(SPEC_EXAMPLES)('%s', (input, expected) => {
    expect(canonicalJson(parseStrictJson(input, { strict: true }))).toBe(expected);
  });

  it('-0 and 1e10 become 0 and 10000000000 (the lenient reading of the last example)', () => {
    const parsed = parseStrictJson('{\n    "a": -0,\n    "b": 1e10\n}', { strict: false });
    expect(canonicalJson(parsed)).toBe('{"a":0,"b":10000000000}');
    // The same values built in code.
    expect(canonicalJson({ b: 1e10, a: -0 })).toBe('{"a":0,"b":10000000000}');
  });

  it('encodes to UTF-8 bytes', () => {
    expect(canonicalJsonBytes({ a: '日' }).equals(Buffer.from('{"a":"日"}', 'utf8'))).toBe(true);
  });
});

describe('canonicalJson: grammar', () => {
  it('uses the dedicated escapes and lowercase \\u00XX for other ASCII controls', () => {
    expect(canonicalJson('\b\t\n\f\r"\\')).toBe('"\\b\\t\\n\\f\\r\\"\\\\"');
    expect(canonicalJson('\u0000\u0001\u0007\u000b\u000e\u001f')).toBe('"\\u0000\\u0001\\u0007\\u000b\\u000e\\u001f"');
    // Not escaped: DEL, `/`, non-ASCII, astral characters.
    expect(canonicalJson('\u007f/é😀\u2028')).toBe('"\u007f/é😀\u2028"');
  });

  it('sorts keys by code point, not by UTF-16 unit, and not numerically', () => {
    // U+FF21 (one UTF-16 unit, 0xFF21) sorts before U+1F600 (surrogates 0xD83D…) by code point.
    expect(canonicalJson({ '😀': 1, 'Ａ': 2 })).toBe('{"Ａ":2,"😀":1}');
    expect(canonicalJson({ '9': 1, '10': 2, b: 3, B: 4, '': 5 })).toBe('{"":5,"10":2,"9":1,"B":4,"b":3}');
  });

  it('writes no whitespace in nested arrays and objects', () => {
    expect(canonicalJson({ a: [1, [true, false, null], { z: {}, y: [] }] })).toBe('{"a":[1,[true,false,null],{"y":[],"z":{}}]}');
  });

  it('leaves out properties whose value is undefined', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  it('keeps a __proto__ key that is an own property', () => {
    const parsed = parseStrictJson('{"__proto__":{"x":1},"a":2}', { strict: true });
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"x":1},"a":2}');
  });

  it('refuses what canonical JSON cannot represent', () => {
    expect(() => canonicalJson(1.5)).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(2 ** 53)).toThrow(/outside/);
    expect(() => canonicalJson(-(2 ** 53))).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(NaN)).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(Infinity, { strict: false })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson('\ud800')).toThrow(/surrogate/);
    expect(() => canonicalJson({ ['\udc00']: 1 })).toThrow(/surrogate/);
    expect(() => canonicalJson([undefined])).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(new Date(0))).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(new Map())).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(BigInt(1))).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(() => 1)).toThrow(CanonicalJsonError);
  });

  it('accepts the range limits exactly', () => {
    expect(canonicalJson([2 ** 53 - 1, -(2 ** 53) + 1])).toBe('[9007199254740991,-9007199254740991]');
  });

  it('lenient mode (rooms v1–v5) writes floats and big integers without exponent for integers', () => {
    expect(canonicalJson({ a: 1.5, b: 2 ** 53, c: 1e21 }, { strict: false })).toBe(
      '{"a":1.5,"b":9007199254740992,"c":1000000000000000000000}',
    );
  });
});

describe('parseStrictJson', () => {
  function reasonOf(text: string | Uint8Array, strict = true): string {
    try {
      parseStrictJson(text, { strict });
    } catch (err) {
      if (err instanceof JsonParseError) return `${err.errcode}/${err.reason}`;
      throw err;
    }
    return 'ok';
  }

  it('parses every JSON type like JSON.parse', () => {
    const text = ' {"a" : [1, -2, 0, true, false, null, "x\\u0041\\n\\/"], "b": {"c": {}} , "d": []}\n';
    expect(parseStrictJson(text, { strict: true })).toEqual(JSON.parse(text));
    expect(parseStrictJson('"top"', { strict: true })).toBe('top');
    expect(parseStrictJson('42', { strict: true })).toBe(42);
    expect(parseStrictJson('null', { strict: true })).toBeNull();
  });

  it('decodes surrogate pair escapes and raw astral characters', () => {
    expect(parseStrictJson('"\\ud83d\\ude00😀"', { strict: true })).toBe('😀😀');
  });

  it('refuses duplicate keys, also nested and also in lenient mode', () => {
    expect(reasonOf('{"a":1,"a":1}')).toBe('M_BAD_JSON/duplicate-key');
    expect(reasonOf('{"x":{"a":1,"b":2,"a":3}}', false)).toBe('M_BAD_JSON/duplicate-key');
    // The same key written with an escape is still the same key.
    expect(reasonOf('{"a":1,"\\u0061":2}')).toBe('M_BAD_JSON/duplicate-key');
    expect(reasonOf('{"__proto__":1,"__proto__":2}')).toBe('M_BAD_JSON/duplicate-key');
    // Keys inherited from Object.prototype are not duplicates.
    expect(parseStrictJson('{"toString":1,"constructor":2}', { strict: true })).toEqual({ toString: 1, constructor: 2 });
  });

  it('reports the position of the duplicate key', () => {
    try {
      parseStrictJson('{"a":1,"a":2}', { strict: true });
      throw new Error('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(JsonParseError);
      expect((err as JsonParseError).position).toBe(7);
    }
  });

  it('refuses NaN, Infinity and other non-JSON as M_NOT_JSON', () => {
    for (const text of ['NaN', '{"a":NaN}', 'Infinity', '-Infinity', '[1,]', '{"a":1,}', "{'a':1}", '{a:1}', '01', '-', '1.', '.5',
      '1e', '+1', '[1 2]', '{"a" 1}', '"abc', '"a\\x"', '"\\u12"', '"\t"', '', '   ', 'tru', 'nul', '{"a":1}x', '[', '{', '// c\n1', '0x10']) {
      expect([text, reasonOf(text, false)]).toEqual([text, 'M_NOT_JSON/syntax']);
    }
  });

  it('in strict mode refuses floats and integers outside [-(2^53)+1, 2^53-1]', () => {
    expect(reasonOf('{"a":1.5}')).toBe('M_BAD_JSON/float');
    expect(reasonOf('{"a":1.0}')).toBe('M_BAD_JSON/float');
    expect(reasonOf('{"a":1e10}')).toBe('M_BAD_JSON/float');
    expect(reasonOf('{"a":1E2}')).toBe('M_BAD_JSON/float');
    expect(reasonOf('[9007199254740992]')).toBe('M_BAD_JSON/integer-range');
    expect(reasonOf('[-9007199254740992]')).toBe('M_BAD_JSON/integer-range');
    expect(reasonOf('[9007199254740993]')).toBe('M_BAD_JSON/integer-range');
    expect(reasonOf('[123456789012345678901234567890]')).toBe('M_BAD_JSON/integer-range');
    expect(parseStrictJson('[9007199254740991,-9007199254740991,-0]', { strict: true })).toEqual([2 ** 53 - 1, -(2 ** 53) + 1, 0]);
  });

  it('in lenient mode (rooms v1–v5) reads floats and big integers', () => {
    expect(parseStrictJson('{"a":1.5,"b":1e10,"c":9007199254740993}', { strict: false })).toEqual({ a: 1.5, b: 1e10, c: 2 ** 53 });
    expect(reasonOf('1e400', false)).toBe('M_BAD_JSON/integer-range');
  });

  it('refuses lone surrogates, raw or escaped', () => {
    expect(reasonOf('"\\ud800"')).toBe('M_BAD_JSON/lone-surrogate');
    expect(reasonOf('{"\\udc00x":1}')).toBe('M_BAD_JSON/lone-surrogate');
    expect(reasonOf('"\ud800"')).toBe('M_BAD_JSON/lone-surrogate');
    expect(reasonOf('"\\ude00\\ud83d"')).toBe('M_BAD_JSON/lone-surrogate');
  });

  it('decodes bytes as UTF-8 and refuses invalid UTF-8 as M_NOT_JSON', () => {
    expect(parseStrictJson(Buffer.from('{"a":"日本語"}', 'utf8'), { strict: true })).toEqual({ a: '日本語' });
    expect(reasonOf(Buffer.from([0x22, 0xff, 0x22]))).toBe('M_NOT_JSON/invalid-utf8');
    expect(reasonOf(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]))).toBe('M_NOT_JSON/invalid-utf8'); // CESU surrogate
  });

  it('limits nesting depth', () => {
    expect(reasonOf('['.repeat(600) + ']'.repeat(600))).toBe('M_BAD_JSON/too-deep');
    expect(reasonOf('{"a":'.repeat(600) + '1' + '}'.repeat(600))).toBe('M_BAD_JSON/too-deep');
    expect(parseStrictJson('['.repeat(100) + ']'.repeat(100), { strict: true })).toBeDefined();
    expect(() => parseStrictJson('[[[1]]]', { strict: true, maxDepth: 2 })).toThrow(JsonParseError);
  });
});

describe('canonical JSON properties', () => {
  const safeInt = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }).map((n) => (n === 0 ? 0 : n));
  const jsonValue: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: 'binary' }).filter((s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()),
      safeInt,
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(fc.string({ unit: 'binary' }).filter((s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()), tie('value'), {
        maxKeys: 5,
      }),
    ),
  })).value;

  it('parse(canonical(x)) deep-equals x, and canonical is idempotent', () => {
    fc.assert(
      fc.property(jsonValue, (x) => {
        const text = canonicalJson(x);
        const back = parseStrictJson(text, { strict: true });
        expect(back).toEqual(x);
        expect(canonicalJson(back)).toBe(text);
        // JSON.parse agrees with our parser on canonical output.
        expect(JSON.parse(text)).toEqual(back);
      }),
      { numRuns: 500 },
    );
  });

  it('canonical output does not depend on key insertion order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), safeInt, { maxKeys: 10 }), (dict) => {
        const reversed = Object.fromEntries(Object.entries(dict).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(dict));
      }),
      { numRuns: 200 },
    );
  });

  it('parses any JSON.stringify output of JSON values the same as JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        const text = JSON.stringify(x, null, 1);
        expect(parseStrictJson(text, { strict: false })).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });
});
