import { isValidAuthority } from '../codec-guard.js';
import { firstValue, type HeaderMap } from '../headers.js';
import { LocalReplies, type LocalReplySpec } from '../response-flags.js';

const AUTHORITY_HOST_MISMATCH: LocalReplySpec = { status: 400, body: 'Bad Request', details: 'http2.authority_host_mismatch' };
const INVALID_AUTHORITY: LocalReplySpec = { status: 400, body: 'Bad Request', details: 'http.invalid_authority' };

/**
 * The request's authority as Envoy's codec checks it: present (400 missing host), one
 * authority on HTTP/2 (RFC 9113 §8.3.1: a Host naming another authority than :authority
 * is malformed — an HTTP/1.1 hop behind us would read Host where routing here read
 * :authority), and only RFC 3986 authority characters. Returns the protocol-error reply,
 * or undefined when the authority is fine. Allocates nothing.
 */
export function authorityProblem(authority: string | undefined, headers: HeaderMap, isH2: boolean): LocalReplySpec | undefined {
  if (authority === undefined || authority === '') return LocalReplies.missingHost;
  if (isH2 && headers.host !== undefined && headers[':authority'] !== undefined && firstValue(headers.host) !== authority) return AUTHORITY_HOST_MISMATCH;
  if (!isValidAuthority(authority)) return INVALID_AUTHORITY;
  return undefined;
}
