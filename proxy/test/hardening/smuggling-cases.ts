// Requests two HTTP/1.1 parsers could read differently, each hiding a second request
// ("/smuggled"); shared by e2e/smuggling.test.ts and bench/soak.

export const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n';
export type Expect = 'reject' | 'safe';
// `streamed`: the body error is found after the headers were forwarded (Envoy streams
// too); the upstream request is then reset, and still nothing past it may arrive.
export interface Case { name: string; req: string | Buffer; expect: Expect; status?: RegExp; streamed?: boolean }

export const h = (lines: string[], body = '') => `${lines.join('\r\n')}\r\n\r\n${body}`;

export const cases: Case[] = [
  { name: 'CL and TE', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 4', 'Transfer-Encoding: chunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'TE and CL', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Content-Length: 40'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'duplicate CL, different values', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 0', 'Content-Length: 35'], SMUGGLED), expect: 'reject' },
  { name: 'comma-listed CL, different values', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 0, 35'], SMUGGLED), expect: 'reject' },
  { name: 'CL with sign', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length: +35'], SMUGGLED), expect: 'reject' },
  { name: 'CL hex', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 0x23'], SMUGGLED), expect: 'reject' },
  { name: 'TE not final chunked', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked, gzip'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'TE identity', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: identity', 'Content-Length: 0'], SMUGGLED), expect: 'reject' },
  { name: 'TE xchunked', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: xchunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'TE chunked twice (two fields)', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'TE gzip then chunked field', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip', 'Transfer-Encoding: identity'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'TE with vertical tab', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding:\x0bchunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'TE in HTTP/1.0', req: h(['POST / HTTP/1.0', 'Host: a', 'Transfer-Encoding: chunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'obs-fold', req: h(['GET / HTTP/1.1', 'Host: a', 'X-A: b', ' c']), expect: 'reject' },
  { name: 'obs-fold on TE', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 0', 'Transfer-Encoding:', ' chunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'space before colon', req: h(['POST / HTTP/1.1', 'Host: a', 'Content-Length : 35'], SMUGGLED), expect: 'reject' },
  { name: 'tab before colon', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding\t: chunked'], `0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'space in name', req: h(['GET / HTTP/1.1', 'Host: a', 'X A: b']), expect: 'reject' },
  { name: 'control char in name', req: h(['GET / HTTP/1.1', 'Host: a', 'X\x01A: b']), expect: 'reject' },
  { name: 'NUL in value', req: h(['GET / HTTP/1.1', 'Host: a', 'X-A: b\x00c']), expect: 'reject' },
  { name: 'DEL in value', req: h(['GET / HTTP/1.1', 'Host: a', 'X-A: b\x7fc']), expect: 'reject' },
  { name: 'bare CR in value', req: h(['GET / HTTP/1.1', 'Host: a', 'X-A: b\rc']), expect: 'reject' },
  { name: 'bare LF line endings', req: `GET / HTTP/1.1\nHost: a\nContent-Length: 35\n\n${SMUGGLED}`, expect: 'reject' },
  { name: 'bare CR line endings', req: `POST / HTTP/1.1\rHost: a\rContent-Length: 35\r\r${SMUGGLED}`, expect: 'reject' },
  { name: 'empty header name', req: h(['GET / HTTP/1.1', 'Host: a', ': b']), expect: 'reject' },
  { name: 'chunk size not hex', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `5x\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk size negative', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `-5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk size 0x prefix', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `0x5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk size overflow', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `10000000000000005\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk size with space', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `5 \r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk extension with bare LF', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `5;a\nb\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk extension with bare CR', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `5;a\rb\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject' },
  { name: 'chunk data longer than size', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `2\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), expect: 'reject', streamed: true },
  { name: 'chunk without CRLF after data', req: h(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], `5\r\nhelloX0\r\n\r\n${SMUGGLED}`), expect: 'reject', streamed: true },
  { name: 'missing Host', req: h(['GET / HTTP/1.1']), expect: 'reject' },
  { name: 'duplicate Host', req: h(['GET / HTTP/1.1', 'Host: a', 'Host: b']), expect: 'reject' },
  { name: 'empty Host', req: h(['GET / HTTP/1.1', 'Host: ']), expect: 'reject' },
  { name: 'Host with path chars', req: h(['GET / HTTP/1.1', 'Host: a/b@c']), expect: 'reject' },
  { name: 'asterisk-form with GET', req: h(['GET * HTTP/1.1', 'Host: a']), expect: 'reject' },
  { name: 'absolute-form, non-http scheme', req: h(['GET ftp://a/ HTTP/1.1', 'Host: a']), expect: 'reject' },
  { name: 'authority-form with GET', req: h(['GET a:80 HTTP/1.1', 'Host: a']), expect: 'reject' },
  { name: 'target with space', req: h(['GET /a b HTTP/1.1', 'Host: a']), expect: 'reject' },
  // llhttp reads the extra space as part of the separator: one unambiguous target, re-serialised canonically upstream.
  { name: 'double space in request line', req: h(['GET  / HTTP/1.1', 'Host: a']), expect: 'safe' },
  { name: 'unknown version', req: h(['GET / HTTP/1.2', 'Host: a']), expect: 'reject', status: /^HTTP\/1\.1 (400|505)/ },
  { name: 'HTTP/0.9', req: 'GET /\r\n\r\n', expect: 'reject' },
  { name: 'invalid method chars', req: h(['G(T / HTTP/1.1', 'Host: a']), expect: 'reject' },
  { name: 'oversized headers', req: h(['GET / HTTP/1.1', 'Host: a', `X-A: ${'a'.repeat(70 * 1024)}`]), expect: 'reject', status: /^HTTP\/1\.1 431/ },
  // Not malformed, but classic smuggling helpers: must be forwarded as one request only.
  { name: 'h2c upgrade', req: h(['GET / HTTP/1.1', 'Host: a', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA']), expect: 'safe' },
  { name: 'websocket upgrade header on POST with CL', req: h(['POST / HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket', 'Content-Length: 35'], SMUGGLED), expect: 'safe' },
  { name: 'Connection names Content-Length', req: h(['POST / HTTP/1.1', 'Host: a', 'Connection: Content-Length', 'Content-Length: 35'], SMUGGLED), expect: 'safe' },
  { name: 'Expect 100-continue with CL body', req: h(['POST / HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 35'], SMUGGLED), expect: 'safe' },
  { name: 'absolute-form http (allowed, Host ignored)', req: h(['GET http://a/x HTTP/1.1', 'Host: b']), expect: 'safe' },
];

