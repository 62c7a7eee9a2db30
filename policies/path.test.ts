// Table-driven tests for path.ts; each case's name says what it proves.
import { describe, expect, test } from 'vitest';
import { compilePathGlob, findAmbiguousEncoding, normalizePath, normalizePathGlob, pathMatchesGlob } from './path.js';

describe('normalizePath', () => {
  test.each([
    ['plain path is unchanged', '/v1/upload', '/v1/upload'],
    ['root', '/', '/'],
    ['query string is dropped', '/v1/search?q=secret&x=/..', '/v1/search'],
    ['trailing slash is kept', '/v1/files/', '/v1/files/'],
    ['"//" runs collapse', '//v1///files//a', '/v1/files/a'],
    ['"." segments go', '/v1/./files/.', '/v1/files/'],
    ['".." resolves', '/v1/files/../admin', '/v1/admin'],
    ['".." at the end leaves a directory', '/v1/files/..', '/v1/'],
    ['".." above root stays at root', '/../../etc/passwd', '/etc/passwd'],
    ['encoded dots are dots: /v1/%2e%2e/admin is /admin', '/v1/%2e%2e/admin', '/admin'],
    ['mixed-case encoded dots', '/v1/%2E%2e/admin', '/admin'],
    ['half-encoded dots', '/v1/.%2e/admin', '/admin'],
    ['unreserved characters are decoded', '/%7Euser/%41%62c-%5F', '/~user/Abc-_'],
    ['encoded slash is not a separator', '/v1/a%2fb', '/v1/a%2Fb'],
    ['encoded slash does not take part in dot resolution', '/v1/..%2F..%2Fadmin', '/v1/..%2F..%2Fadmin'],
    ['reserved escapes are upper-cased, not decoded', '/a%3bb%3Dc%20d', '/a%3Bb%3Dc%20d'],
    ['a dot-led name is not a dot segment', '/.well-known/acme', '/.well-known/acme'],
    ['three dots are a name', '/v1/.../x', '/v1/.../x'],
  ])('%s: %s → %s', (_name, input, expected) => {
    expect(normalizePath(input)).toEqual({ path: expected });
  });

  test.each([
    ['must start with "/"', 'v1/upload', 'must start with "/"'],
    ['asterisk-form is not a path', '*', 'must start with "/"'],
    ['absolute-form is not a path', 'http://evil.test/', 'must start with "/"'],
    ['empty', '', 'must start with "/"'],
    ['invalid percent escape', '/v1/%zz', 'invalid percent escape "%zz"'],
    ['truncated percent escape', '/v1/%', 'invalid percent escape "%"'],
    ['one hex digit', '/v1/%4', 'invalid percent escape "%4"'],
    ['encoded NUL', '/v1/a%00.json', 'encoded NUL'],
    ['backslash is rejected', '/v1\\..\\admin', 'backslash'],
    ['space is rejected', '/v1/a b', 'percent-encode'],
    ['non-ASCII is rejected', '/v1/é', 'percent-encode'],
    ['control character is rejected', '/v1/a\r\nHost: evil', 'percent-encode'],
    ['fragment is rejected', '/v1/a#b', '"#"'],
    ['..; segment is rejected', '/v1/..;/admin', 'ambiguous segment'],
    ['.; segment is rejected', '/v1/.;x/admin', 'ambiguous segment'],
    ['encoded ..; segment is rejected', '/v1/%2e%2e;/admin', 'ambiguous segment'],
  ])('rejects when %s: %j', (_name, input, expected) => {
    const result = normalizePath(input);
    expect(result).toHaveProperty('error');
    expect('error' in result && result.error).toContain(expected);
  });
});

describe('normalizePathGlob', () => {
  test.each([
    ['glob is normalised like a path', '/v1//%7euser/*', '/v1/~user/*'],
    ['trailing slash kept', '/v1/', '/v1/'],
    ['root', '/', '/'],
  ])('%s: %s → %s', (_name, input, expected) => {
    expect(normalizePathGlob(input)).toEqual({ glob: expected });
  });

  test.each([
    ['no leading slash', 'v1/**', 'must start with "/"'],
    ['query string', '/v1/search?q=*', 'must not contain "?"'],
    ['".." segment', '/v1/../admin', '"." or ".." segments'],
    ['encoded ".." segment', '/v1/%2e%2e/admin', '"." or ".." segments'],
    ['"." segment', '/v1/./x', '"." or ".." segments'],
    ['"**" inside a segment', '/v1/a**', '"**" must be a whole segment'],
    ['invalid percent escape', '/v1/%g0', 'invalid percent escape'],
  ])('rejects %s: %j', (_name, input, expected) => {
    const result = normalizePathGlob(input);
    expect(result).toHaveProperty('error');
    expect('error' in result && result.error).toContain(expected);
  });
});

describe('pathMatchesGlob', () => {
  test.each([
    ['exact glob matches itself', '/v1/upload', '/v1/upload', true],
    ['exact glob does not match a longer path', '/v1/upload/x', '/v1/upload', false],
    ['exact glob does not match a trailing slash', '/v1/upload/', '/v1/upload', false],
    ['exact glob ignores the query string', '/v1/upload?x=1', '/v1/upload', true],
    ['"*" matches one segment', '/v1/files/a', '/v1/files/*', true],
    ['"*" does not match two segments', '/v1/files/a/b', '/v1/files/*', false],
    ['"*" as a whole segment needs a character', '/v1/files/', '/v1/files/*', false],
    ['"*" does not match the parent', '/v1/files', '/v1/files/*', false],
    ['"*" within a segment', '/v1/report-2024.csv', '/v1/report-*.csv', true],
    ['"*" within a segment may match nothing', '/v1/report-.csv', '/v1/report-*.csv', true],
    ['"*" within a segment stays in the segment', '/v1/report-a/b.csv', '/v1/report-*.csv', false],
    ['several "*" in a segment', '/v1/a-x-b-y-c', '/v1/a-*-b-*-c', true],
    ['several "*" in a segment, out of order', '/v1/a-x-c-y-b', '/v1/a-*-b-*-c', false],
    ['"**" matches the directory itself', '/v1', '/v1/**', true],
    ['"**" matches the directory with a slash', '/v1/', '/v1/**', true],
    ['"**" matches any depth', '/v1/a/b/c', '/v1/**', true],
    ['"**" does not match a sibling with the same prefix', '/v10/a', '/v1/**', false],
    ['"/**" matches everything', '/anything/at/all', '/**', true],
    ['"**" in the middle matches zero segments', '/v1/meta', '/v1/**/meta', true],
    ['"**" in the middle matches several segments', '/v1/a/b/meta', '/v1/**/meta', true],
    ['"**" in the middle still needs the tail', '/v1/a/b/meta/x', '/v1/**/meta', false],
    ['"**" then "*"', '/v1/a/b/c.json', '/v1/**/*.json', true],
    ['"**" then "*" needs the suffix', '/v1/a/b/c.xml', '/v1/**/*.json', false],
    ['two "**"', '/a/x/b/y/z/c', '/a/**/b/**/c', true],
    ['two "**" backtrack', '/a/b/b/c/b', '/a/**/b/**/c', false],
    ['/v1/%2e%2e/admin cannot slip past a /v1/** rule', '/v1/%2e%2e/admin', '/v1/**', false],
    ['/v1/../admin cannot slip past a /v1/** rule', '/v1/../admin', '/v1/**', false],
    ['encoded slash is not a separator: one segment for "*"', '/v1/files/a%2Fb', '/v1/files/*', true],
    ['encoded slash is not a separator: no second segment', '/v1/files/a%2Fb', '/v1/files/a/b', false],
    ['glob with an escape matches the decoded path', '/~user/x', '/%7Euser/x', true],
    ['invalid path matches nothing', '/v1/%zz', '/**', false],
    ['invalid glob matches nothing', '/v1/x', 'v1/**', false],
  ])('%s: %s vs %s', (_name, path, glob, expected) => {
    expect(pathMatchesGlob(path, glob)).toBe(expected);
  });

  test('a path built to make a backtracking matcher explode is answered quickly', () => {
    const glob = compilePathGlob('/**/a/**/a/**/a/**/a/**/b');
    if ('error' in glob) throw new Error(glob.error);
    const path = `/${Array.from({ length: 3000 }, () => 'a').join('/')}`;
    const started = performance.now();
    expect(glob.matches(path)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('findAmbiguousEncoding', () => {
  // Each path here is one that a percent-decoding upstream (python http.server, a static file
  // server, a Windows server) reads as a different path than the policy judged.
  test.each([
    ['encoded slash after "..": /ok/..%2Fno', '/ok/..%2Fno/secret', 'next to an encoded "/"'],
    ['lower-case encoded slash after ".."', '/ok/..%2fno/secret', 'next to an encoded "/"'],
    ['encoded dots and slash: /ok/%2e%2e%2fno', '/ok/%2e%2e%2fno/secret', 'next to an encoded "/"'],
    ['encoded slash before ".."', '/ok/x%2F..%2F..%2Fno', 'next to an encoded "/"'],
    ['encoded slash before ".." at the end of a segment', '/ok/x%2F../no', 'next to an encoded "/"'],
    ['"." next to an encoded slash', '/ok/.%2Fsecret', 'next to an encoded "/"'],
    ['encoded backslash after ".."', '/ok/..%5Cno/secret', 'next to an encoded "/", "\\"'],
    ['lower-case encoded backslash after ".."', '/ok/..%5cno/secret', 'next to an encoded'],
    ['encoded ";" after ".." (Tomcat path parameters)', '/ok/..%3B/no/secret', 'next to an encoded'],
    ['three dots next to an encoded slash (Windows trims trailing dots)', '/ok/...%2Fno', 'next to an encoded'],
    ['fully encoded ".." segment', '/ok/%2e%2e/no/secret', 'percent-encoded ".." segment'],
    ['upper-case encoded ".." segment', '/ok/%2E%2E/no/secret', 'percent-encoded ".." segment'],
    ['half-encoded ".." segment', '/ok/.%2e/no/secret', 'percent-encoded ".." segment'],
    ['the other half encoded', '/ok/%2e./no/secret', 'percent-encoded ".." segment'],
    ['encoded "." segment', '/ok/%2e/secret', 'percent-encoded "." segment'],
    ['".." padded with an encoded space', '/ok/..%20/no/secret', 'padded with encoded spaces'],
    ['double-encoded dots: %252e', '/ok/%252e%252e/no/secret', 'double percent-encoded "%2e"'],
    ['double-encoded dots, upper case', '/ok/%252E%252E/no/secret', 'double percent-encoded "%2E"'],
    ['double-encoded slash after ".."', '/ok/..%252fno/secret', 'double percent-encoded "%2f"'],
    ['double-encoded slash without dots', '/ok/a%252Fb', 'double percent-encoded'],
    ['double-encoded backslash', '/ok/..%255cno', 'double percent-encoded "%5c"'],
    ['double encoding spelt out escape by escape (%25%32%65)', '/ok/%25%32%65%25%32%65/no', 'double percent-encoded "%2e"'],
    ['double-encoded NUL', '/ok/a%2500.txt', 'double percent-encoded "%00"'],
    ['double-encoded overlong dot', '/ok/%25c0%25ae%25c0%25ae/no', 'double percent-encoded "%c0"'],
    ['overlong UTF-8 dot: %c0%ae', '/ok/%c0%ae%c0%ae/no/secret', 'overlong UTF-8'],
    ['overlong UTF-8 slash: %c0%af', '/ok/..%c0%afno/secret', 'overlong UTF-8'],
    ['overlong UTF-8, upper case', '/ok/%C0%AE%C0%AE/no', 'overlong UTF-8'],
    ['overlong UTF-8 with a C1 lead', '/ok/%c1%9c', 'overlong UTF-8'],
    ['three-byte overlong dot: %e0%80%ae', '/ok/%e0%80%ae%e0%80%ae/no', 'overlong UTF-8'],
    ['four-byte overlong dot: %f0%80%80%ae', '/ok/%f0%80%80%ae/no', 'overlong UTF-8'],
    ['encoded tab after ".." (some servers trim it)', '/ok/..%09/no/secret', 'encoded control character (%09)'],
    ['encoded NUL (C stacks cut the path there)', '/ok/x%00/../../no', 'encoded control character (%00)'],
    ['encoded newline', '/ok/a%0Ab', 'encoded control character (%0A)'],
    ['encoded DEL', '/ok/a%7fb', 'encoded control character (%7F)'],
    ['an invalid escape', '/ok/%zz', 'invalid percent escape'],
  ])('refuses %s: %s', (_name, path, expected) => {
    expect(findAmbiguousEncoding(path)).toContain(expected);
  });

  test.each([
    ['a plain path', '/ok/file'],
    ['plain ".." (resolved by normalizePath, judged as resolved)', '/ok/../no/secret'],
    ['an encoded slash with no dot segment beside it (GitLab project paths)', '/api/v4/projects/group%2Fsub%2Fproject/repository/files/src%2Fmain.c'],
    ['an encoded slash next to a dot-led name', '/api/v4/projects/1/repository/files/group%2F.gitlab-ci.yml'],
    ['an encoded backslash inside a name', '/ok/a%5Cb'],
    ['an encoded dot inside a name', '/ok/file%2Ejson'],
    ['an encoded dot leading a name', '/ok/%2ewell-known'],
    ['encoded unreserved characters', '/%7Euser/%41bc'],
    ['an encoded space and an encoded percent sign', '/ok/my%20file%2520.txt'],
    ['an encoded question mark and hash', '/ok/a%3Fb%23c'],
    ['UTF-8 text', '/ok/%C3%A9t%C3%A9/%E0%B8%81/%F0%9F%98%80'],
    ['three dots as a name', '/ok/.../x'],
  ])('allows %s: %s', (_name, path) => {
    expect(findAmbiguousEncoding(path)).toBeNull();
  });
});
