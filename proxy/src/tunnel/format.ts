/**
 * The part of Envoy's substitution format language the waypoint's tunnel settings use
 * (tcp_proxy tunneling_config hostname / headers_to_add, set_filter_state values):
 * connection addresses, the peer's and our URI SAN, filter state, request headers.
 * Compiled once at configuration time; an unknown operator is a configuration error,
 * never a silently empty value.
 */
import type { ConnectionInfo } from '../net/connection-info.js';

export interface FormatContext {
  readonly info: ConnectionInfo | undefined;
  /** The request's headers (HTTP set_filter_state); pseudo-headers (":authority") included. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
  /** Filter state visible to the format (the connection's, plus the stream's own). */
  readonly filterState?: ReadonlyMap<string, unknown>;
  /** Our own certificate's URI SAN on this connection (%DOWNSTREAM_LOCAL_URI_SAN%). */
  readonly localUriSan?: string;
}

type Getter = (ctx: FormatContext) => string | undefined;
export type CompiledFormat = (ctx: FormatContext) => string;

const hostPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

function local(ctx: FormatContext): { address: string; port: number } | undefined {
  const i = ctx.info;
  return i ? i.originalDst ?? { address: i.localAddress, port: i.localPort } : undefined;
}

function firstHeader(ctx: FormatContext, name: string): string | undefined {
  const v = ctx.headers?.[name];
  return Array.isArray(v) ? v[0] : v;
}

function command(name: string, arg: string | undefined): Getter | string {
  switch (name) {
    case 'DOWNSTREAM_LOCAL_ADDRESS':
      return (c) => {
        const l = local(c);
        return l ? hostPort(l.address, l.port) : undefined;
      };
    case 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT':
      return (c) => local(c)?.address;
    case 'DOWNSTREAM_LOCAL_PORT':
      return (c) => {
        const l = local(c);
        return l ? String(l.port) : undefined;
      };
    case 'DOWNSTREAM_REMOTE_ADDRESS':
      return (c) => (c.info ? hostPort(c.info.remoteAddress, c.info.remotePort) : undefined);
    case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
      return (c) => c.info?.remoteAddress;
    case 'DOWNSTREAM_PEER_URI_SAN':
      return (c) => c.info?.peerPrincipal;
    case 'DOWNSTREAM_LOCAL_URI_SAN':
      return (c) => c.localUriSan;
    case 'REQ': {
      if (!arg) return 'REQ needs a header name';
      const [main, alt] = arg.toLowerCase().split('?');
      return (c) => firstHeader(c, main!) ?? (alt ? firstHeader(c, alt) : undefined);
    }
    case 'FILTER_STATE': {
      if (!arg) return 'FILTER_STATE needs a key';
      const parts = arg.split(':');
      const key = parts[0]!;
      const mode = parts[1] ?? 'PLAIN';
      if (mode !== 'PLAIN' && mode !== 'TYPED') return `FILTER_STATE serialization ${mode} is not supported (PLAIN, TYPED)`;
      return (c) => {
        const v = c.filterState?.get(key) ?? c.info?.filterState?.get(key);
        return v === undefined ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
      };
    }
    default:
      return `%${name}% is not supported here by pilotfish`;
  }
}

/**
 * Compiles a format string; returns an error message for an operator pilotfish cannot
 * evaluate here. A missing value renders as "" (Envoy renders "-" in access logs, but an
 * empty string in header values and filter state, where "-" would be taken literally).
 */
export function compileFormat(text: string): CompiledFormat | string {
  const parts: (string | Getter)[] = [];
  let i = 0;
  let lit = '';
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '%') {
      lit += c;
      i++;
      continue;
    }
    if (text[i + 1] === '%') {
      lit += '%';
      i += 2;
      continue;
    }
    const end = text.indexOf('%', i + 1);
    if (end < 0) return `unterminated "%" at offset ${i}`;
    const body = text.slice(i + 1, end);
    const m = /^([A-Z_]+)(?:\((.*)\))?(?::\d+)?$/.exec(body);
    if (!m) return `"%${body}%" is not a format operator`;
    const g = command(m[1]!, m[2]);
    if (typeof g === 'string') return g;
    if (lit) parts.push(lit);
    lit = '';
    parts.push(g);
    i = end + 1;
  }
  if (lit) parts.push(lit);
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const s = parts[0];
    return () => s;
  }
  return (ctx) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p(ctx) ?? '';
    return out;
  };
}
