/**
 * Envoy's substitution format language (`%COMMAND(arg?alt):N%`), parsed once at
 * configuration time into a list of closures; rendering a request is then a loop of
 * string concatenations with no parsing on the request path.
 */
import { hostname } from 'node:os';
import { headerValue, type LogContext } from '../types.js';

/** A value a command produces: missing values print as `-` (text) or null (JSON). */
export type Value = string | number | undefined;
type Getter = (ctx: LogContext) => Value;

export interface Command {
  readonly name: string;
  readonly arg: string | undefined;
  readonly maxLength: number | undefined;
  readonly get: Getter;
}

export type Part = string | Command;

export interface CompiledFormat {
  readonly parts: readonly Part[];
  /** Text rendering: missing values as `-`. */
  render(ctx: LogContext): string;
  /** A single command with nothing around it keeps its type (JSON numbers, null). */
  readonly single: Command | undefined;
}

export type ParseResult = { readonly ok: true; readonly format: CompiledFormat } | { readonly ok: false; readonly error: string };

/** Envoy's default access log format (`log_format` absent). */
export const DEFAULT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" ' +
  '"%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

const HOST = hostname();

function wallClock(perfMs: number): number {
  return performance.timeOrigin + perfMs;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** strftime subset Envoy users write in START_TIME(...), always UTC. */
export function formatTime(ms: number, fmt: string | undefined): string {
  const d = new Date(ms);
  if (fmt === undefined || fmt === '') return d.toISOString();
  const frac = (digits: number): string => {
    const nanos = Math.floor((ms - Math.floor(ms / 1000) * 1000) * 1e6);
    return String(nanos).padStart(9, '0').slice(0, digits);
  };
  let out = '';
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c !== '%' || i + 1 >= fmt.length) {
      out += c;
      continue;
    }
    let spec = fmt[++i]!;
    let digits = 9;
    if (spec >= '1' && spec <= '9' && fmt[i + 1] === 'f') {
      digits = Number(spec);
      spec = fmt[++i]!;
    } else if (spec === 'E' && /^\d[S]/.test(fmt.slice(i + 1, i + 3))) {
      const n = Number(fmt[i + 1]);
      i += 2;
      out += `${pad(d.getUTCSeconds())}.${frac(n)}`;
      continue;
    }
    switch (spec) {
      case 'Y': out += d.getUTCFullYear(); break;
      case 'm': out += pad(d.getUTCMonth() + 1); break;
      case 'd': out += pad(d.getUTCDate()); break;
      case 'H': out += pad(d.getUTCHours()); break;
      case 'M': out += pad(d.getUTCMinutes()); break;
      case 'S': out += pad(d.getUTCSeconds()); break;
      case 's': out += Math.floor(ms / 1000); break;
      case 'f': out += frac(digits); break;
      case 'z': out += '+0000'; break;
      case 'Z': out += 'UTC'; break;
      case '%': out += '%'; break;
      default: out += `%${spec}`;
    }
  }
  return out;
}

function stripPort(addr: string): string {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    return end > 0 ? addr.slice(1, end) : addr;
  }
  const colon = addr.lastIndexOf(':');
  // A bare IPv6 address has several colons and no port.
  return colon > 0 && addr.indexOf(':') === colon ? addr.slice(0, colon) : addr;
}

const PSEUDO: Record<string, (ctx: LogContext) => string | undefined> = {
  ':path': (c) => c.request.path,
  ':method': (c) => c.request.method,
  ':authority': (c) => c.request.authority || headerValue(c.request.headers, 'host'),
  ':scheme': (c) => c.request.scheme,
};

function headerGetter(arg: string | undefined, what: string): Getter | string {
  if (arg === undefined || arg === '') return `${what} needs a header name, e.g. %${what}(X-REQUEST-ID)%`;
  const alts = arg.split('?');
  if (alts.length > 2) return `${what}(${arg}): more than one alternative header`;
  const names = alts.map((a) => a.trim().toLowerCase());
  if (names.some((n) => n === '')) return `${what}(${arg}): empty header name`;
  if (what === 'TRAILER') {
    // Response trailers are not handed to telemetry.
    return () => undefined;
  }
  if (what === 'RESP') {
    const resp = (n: string) => (c: LogContext): string | undefined => {
      const h = c.stream.responseHeaders;
      return h === undefined ? undefined : headerValue(h, n);
    };
    const a = resp(names[0]!);
    const b = names[1] !== undefined ? resp(names[1]) : undefined;
    return b ? (c) => a(c) ?? b(c) : a;
  }
  const one = (n: string): ((c: LogContext) => string | undefined) => PSEUDO[n] ?? ((c) => headerValue(c.request.headers, n));
  const first = one(names[0]!);
  const second = names[1] !== undefined ? one(names[1]) : undefined;
  return second ? (c) => first(c) ?? second(c) : first;
}

const dash = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

/** Envoy's downstream local address: where the connection was going (the restored original destination), with its port. */
function localAddress(c: LogContext): string | undefined {
  const conn = c.stream.connection;
  if (conn === undefined) return undefined;
  if (conn.originalDst) return conn.originalDst.address.includes(':') ? `[${conn.originalDst.address}]:${conn.originalDst.port}` : `${conn.originalDst.address}:${conn.originalDst.port}`;
  const port = c.stream.downstreamLocalPort;
  if (conn.localAddress === '') return undefined;
  return port === undefined ? conn.localAddress : conn.localAddress.includes(':') ? `[${conn.localAddress}]:${port}` : `${conn.localAddress}:${port}`;
}

/** Commands without arguments. */
const SIMPLE: Record<string, Getter> = {
  DURATION: (c) => Math.max(0, Math.floor(c.endTime - c.stream.startTime)),
  REQUEST_DURATION: (c) => Math.max(0, Math.floor(c.endTime - c.stream.startTime)),
  RESPONSE_DURATION: (c) => Math.max(0, Math.floor(c.endTime - c.stream.startTime)),
  RESPONSE_CODE: (c) => c.stream.responseCode,
  RESPONSE_FLAGS: (c) => c.stream.responseFlags || '-',
  RESPONSE_CODE_DETAILS: (c) => dash(c.stream.responseCodeDetails),
  BYTES_SENT: (c) => c.stream.bytesSent,
  BYTES_RECEIVED: (c) => c.stream.bytesReceived ?? 0,
  PROTOCOL: (c) => dash(c.stream.protocol),
  UPSTREAM_HOST: (c) => dash(c.stream.upstreamHost),
  UPSTREAM_CLUSTER: (c) => dash(c.stream.clusterName),
  UPSTREAM_REQUEST_ATTEMPT_COUNT: (c) => c.stream.attemptCount,
  ROUTE_NAME: (c) => dash(c.stream.routeName),
  DOWNSTREAM_REMOTE_ADDRESS: (c) => dash(c.stream.downstreamAddress),
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: (c) => dash(stripPort(c.stream.downstreamAddress)),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: (c) => dash(c.stream.downstreamAddress),
  DOWNSTREAM_LOCAL_PORT: (c) => c.stream.downstreamLocalPort,
  DOWNSTREAM_PEER_URI_SAN: (c) => dash(c.stream.peerIdentity),
  STREAM_ID: (c) => dash(c.stream.requestId),
  // Istio's default TEXT format (meshConfig.accessLogFile) uses these; values pilotfish does not track print "-" as Envoy prints an empty one.
  UPSTREAM_CLUSTER_RAW: (c) => dash(c.stream.clusterName),
  DOWNSTREAM_LOCAL_ADDRESS: (c) => dash(localAddress(c)),
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: (c) => {
    const a = localAddress(c);
    return a === undefined ? undefined : dash(stripPort(a));
  },
  REQUESTED_SERVER_NAME: (c) => dash(c.stream.connection?.serverName),
  UPSTREAM_LOCAL_ADDRESS: () => undefined,
  UPSTREAM_TRANSPORT_FAILURE_REASON: () => undefined,
  CONNECTION_TERMINATION_DETAILS: () => undefined,
  HOSTNAME: () => HOST,
  TRACE_ID: (c) => {
    const tp = headerValue(c.request.headers, 'traceparent');
    return tp && tp.length >= 35 ? tp.slice(3, 35) : undefined;
  },
};

/** Every command name pilotfish understands (for tests and error messages). */
export const COMMANDS: readonly string[] = [...Object.keys(SIMPLE), 'START_TIME', 'REQ', 'RESP', 'TRAILER'];

function makeCommand(name: string, arg: string | undefined, maxLength: number | undefined): Command | string {
  let get: Getter | string;
  if (name === 'START_TIME') {
    get = (c) => formatTime(wallClock(c.stream.startTime), arg);
  } else if (name === 'REQ' || name === 'RESP' || name === 'TRAILER') {
    get = headerGetter(arg, name);
  } else {
    const g = SIMPLE[name];
    if (!g) return `unknown command %${name}%`;
    if (arg !== undefined) return `%${name}% takes no argument`;
    get = g;
  }
  if (typeof get === 'string') return get;
  return { name, arg, maxLength, get };
}

function renderValue(cmd: Command, ctx: LogContext): string {
  const v = cmd.get(ctx);
  if (v === undefined) return '-';
  const s = typeof v === 'number' ? String(v) : v;
  return cmd.maxLength !== undefined && s.length > cmd.maxLength ? s.slice(0, cmd.maxLength) : s;
}

/** Typed value for JSON: numbers stay numbers, missing is null. */
export function jsonValue(cmd: Command, ctx: LogContext): string | number | null {
  const v = cmd.get(ctx);
  if (v === undefined) return null;
  if (typeof v === 'number') return v;
  return cmd.maxLength !== undefined && v.length > cmd.maxLength ? v.slice(0, cmd.maxLength) : v;
}

function compiled(parts: Part[]): CompiledFormat {
  const single = parts.length === 1 && typeof parts[0] !== 'string' ? parts[0] : undefined;
  return {
    parts,
    single,
    render(ctx) {
      let out = '';
      for (const p of parts) out += typeof p === 'string' ? p : renderValue(p, ctx);
      return out;
    },
  };
}

/**
 * Parses a format string. Never throws: a bad format comes back as `{ok: false, error}`
 * naming the offset, the way the config decoders report problems.
 */
export function parseFormat(text: string): ParseResult {
  const parts: Part[] = [];
  let lit = '';
  let i = 0;
  while (i < text.length) {
    const pct = text.indexOf('%', i);
    if (pct < 0) {
      lit += text.slice(i);
      break;
    }
    lit += text.slice(i, pct);
    if (text[pct + 1] === '%') {
      lit += '%';
      i = pct + 2;
      continue;
    }
    let j = pct + 1;
    while (j < text.length && /[A-Z0-9_]/.test(text[j]!)) j++;
    const name = text.slice(pct + 1, j);
    if (name === '') return { ok: false, error: `at offset ${pct}: "%" must start a command like %RESPONSE_CODE% (write %% for a literal %)` };
    let arg: string | undefined;
    if (text[j] === '(') {
      // The argument may itself contain '%' (START_TIME(%Y-%m-%d)): it ends at a ')' followed by '%' or ':'.
      let close = -1;
      for (let k = j + 1; k < text.length; k++) {
        if (text[k] === ')' && (text[k + 1] === '%' || text[k + 1] === ':')) {
          close = k;
          break;
        }
      }
      if (close < 0) return { ok: false, error: `at offset ${pct}: %${name}(...: missing ")" before the closing %` };
      arg = text.slice(j + 1, close);
      j = close + 1;
    }
    let maxLength: number | undefined;
    if (text[j] === ':') {
      let k = j + 1;
      while (k < text.length && text[k]! >= '0' && text[k]! <= '9') k++;
      const digits = text.slice(j + 1, k);
      if (digits === '' || digits.length > 9) return { ok: false, error: `at offset ${pct}: %${name}: expected a length after ":"` };
      maxLength = Number(digits);
      j = k;
    }
    if (text[j] !== '%') return { ok: false, error: `at offset ${pct}: %${name}: expected a closing "%"` };
    const cmd = makeCommand(name, arg, maxLength);
    if (typeof cmd === 'string') return { ok: false, error: `at offset ${pct}: ${cmd}` };
    if (lit !== '') parts.push(lit);
    lit = '';
    parts.push(cmd);
    i = j + 1;
  }
  if (lit !== '') parts.push(lit);
  return { ok: true, format: compiled(parts) };
}
