import { directoryTerms, entryMatches, queryWords, words } from './user-directory-store';

describe('user directory terms', () => {
  it('splits user IDs and display names into case-folded words', () => {
    expect(words('@Alice.Smith:Example.ORG')).toEqual(['alice', 'smith', 'example', 'org']);
    expect(directoryTerms('@bob:x.org', 'Bob the Builder')).toEqual(['bob', 'x', 'org', 'the', 'builder']);
    expect(queryWords('  BUILDER bo ')).toEqual(['builder', 'bo']);
    expect(queryWords('!!!')).toEqual([]);
    expect(entryMatches({ terms: directoryTerms('@bob:x.org', 'Bob the Builder') }, queryWords('@bob:x build'))).toBe(true);
    expect(entryMatches({ terms: directoryTerms('@bob:x.org', 'Bob') }, queryWords('bob builder'))).toBe(false);
  });
});
