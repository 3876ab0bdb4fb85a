/** Counters named like Envoy's `listener.<x>.ssl.*` / `cluster.<x>.ssl.*`; the proxy reads them as-is. */
export interface TlsStats {
  /** Handshakes completed and accepted (after peer verification). */
  'ssl.handshake': number;
  /** Handshakes that failed or were refused, for any reason. */
  'ssl.connection_error': number;
  'ssl.fail_verify_no_cert': number;
  /** Chain failures of any kind (unknown CA, expired, not yet valid, malformed) - Envoy's aggregate. */
  'ssl.fail_verify_error': number;
  'ssl.fail_verify_san': number;
  'ssl.fail_verify_cert_hash': number;
  /** Per-reason breakdown of fail_verify_error. */
  'ssl.fail_verify_unknown_ca': number;
  'ssl.fail_verify_expired': number;
  'ssl.fail_verify_not_yet_valid': number;
  'ssl.fail_verify_malformed': number;
  /** Peer offered only TLS versions below the configured minimum (TLS 1.2 or older by default). */
  'ssl.fail_protocol_version': number;
  'ssl.session_reused': number;
  'ssl.verify_cache_hit': number;
  'ssl.verify_cache_miss': number;
  'ssl.verify_cache_flush': number;
  /** Certificate or trust material replaced. */
  'ssl.rotation': number;
  /** New material was unusable (bad PEM, key mismatch, missing file); the previous material keeps serving. */
  'ssl.rotation_error': number;
}

export function createTlsStats(): TlsStats {
  return {
    'ssl.handshake': 0,
    'ssl.connection_error': 0,
    'ssl.fail_verify_no_cert': 0,
    'ssl.fail_verify_error': 0,
    'ssl.fail_verify_san': 0,
    'ssl.fail_verify_cert_hash': 0,
    'ssl.fail_verify_unknown_ca': 0,
    'ssl.fail_verify_expired': 0,
    'ssl.fail_verify_not_yet_valid': 0,
    'ssl.fail_verify_malformed': 0,
    'ssl.fail_protocol_version': 0,
    'ssl.session_reused': 0,
    'ssl.verify_cache_hit': 0,
    'ssl.verify_cache_miss': 0,
    'ssl.verify_cache_flush': 0,
    'ssl.rotation': 0,
    'ssl.rotation_error': 0,
  };
}

export type FailReason = 'no_cert' | 'protocol_version' | 'unknown_ca' | 'expired' | 'not_yet_valid' | 'san_mismatch' | 'cert_hash' | 'malformed';

export const REASON_TEXT: Record<FailReason, string> = {
  no_cert: 'no client certificate',
  protocol_version: 'TLS version below minimum',
  unknown_ca: 'unknown CA',
  expired: 'certificate expired',
  not_yet_valid: 'certificate not yet valid',
  san_mismatch: 'SAN mismatch',
  cert_hash: 'certificate hash mismatch',
  malformed: 'malformed certificate',
};

/** Counts a refusal: its own counter, Envoy's aggregate, and connection_error. */
export function countFailure(stats: TlsStats, reason: FailReason): void {
  stats['ssl.connection_error']++;
  switch (reason) {
    case 'no_cert': stats['ssl.fail_verify_no_cert']++; break;
    case 'protocol_version': stats['ssl.fail_protocol_version']++; break;
    case 'san_mismatch': stats['ssl.fail_verify_san']++; break;
    case 'cert_hash': stats['ssl.fail_verify_cert_hash']++; break;
    case 'unknown_ca': stats['ssl.fail_verify_unknown_ca']++; stats['ssl.fail_verify_error']++; break;
    case 'expired': stats['ssl.fail_verify_expired']++; stats['ssl.fail_verify_error']++; break;
    case 'not_yet_valid': stats['ssl.fail_verify_not_yet_valid']++; stats['ssl.fail_verify_error']++; break;
    case 'malformed': stats['ssl.fail_verify_malformed']++; stats['ssl.fail_verify_error']++; break;
  }
}

export type TlsLogger = (level: 'info' | 'warn' | 'error', message: string) => void;

export const defaultLogger: TlsLogger = (level, message) => {
  process.stderr.write(`${new Date().toISOString()} ${level} certs: ${message}\n`);
};

/**
 * At most `burst` lines per reason per window, then one summary: a flood of bad
 * handshakes must not turn into a flood of log writes.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(private readonly log: TlsLogger, private readonly burst = 20, private readonly windowMs = 10_000) {}

  line(key: string, level: 'info' | 'warn' | 'error', message: string): void {
    const now = Date.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (w && w.count > this.burst) this.log(level, `${w.count - this.burst} more "${key}" lines suppressed`);
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    if (++w.count <= this.burst) this.log(level, message);
  }
}
