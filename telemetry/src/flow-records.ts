/**
 * Flow records in the access-log pipeline: a connection seen by the kernel (fastpath
 * observe) rendered with Envoy's substitution format language, written through the
 * same bounded LineSink as request logs. Only the commands that mean something for a
 * connection apply; the rest is a configuration error, not a silent `-`.
 *
 * Direction decides which side is "downstream": outbound, the workload's socket is the
 * downstream and the destination the upstream; inbound, the peer is the downstream.
 * %FLOW(field)% reads any field of the record (pid, comm, srtt_us, retransmits, via, ...).
 */
import { formatTime } from './access-log/format.js';
import { LineSink } from './access-log/sink.js';
import { hostname } from 'node:os';

/** The fields of a flow record this module reads (fastpath/src/observe.ts FlowRecord). */
export interface FlowRecordView {
  readonly time: string;
  readonly event: string;
  readonly direction: 'outbound' | 'inbound';
  readonly outcome: string;
  readonly local: string;
  readonly remote: string;
  readonly destination: string;
  readonly service: string | null;
  readonly bytes_sent: number;
  readonly bytes_received: number;
  readonly duration_ms: number;
  readonly errno: number;
  readonly connection_id: string;
}

type Value = string | number | undefined;
type Getter = (r: FlowRecordView) => Value;

const HOST = hostname();
const out = (r: FlowRecordView): boolean => r.direction === 'outbound';

/** Envoy response flags for a connection outcome: UF connect failure, UC upstream termination, DC downstream termination. */
export function flowResponseFlags(outcome: string): string {
  switch (outcome) {
    case 'refused': case 'timeout': case 'error': return 'UF';
    case 'reset': return 'UC';
    case 'aborted': return 'DC';
    default: return '-';
  }
}

const FAILURE: Record<string, string> = { refused: 'connection refused', timeout: 'connection timeout', reset: 'connection reset', aborted: 'aborted before connect' };

const SIMPLE: Record<string, Getter> = {
  DURATION: (r) => Math.floor(r.duration_ms),
  BYTES_SENT: (r) => r.bytes_sent,
  BYTES_RECEIVED: (r) => r.bytes_received,
  UPSTREAM_HOST: (r) => (out(r) ? r.destination : undefined),
  UPSTREAM_LOCAL_ADDRESS: (r) => (out(r) ? r.local : undefined),
  UPSTREAM_CLUSTER: (r) => r.service ?? undefined,
  DOWNSTREAM_REMOTE_ADDRESS: (r) => (out(r) ? r.local : r.remote),
  DOWNSTREAM_LOCAL_ADDRESS: (r) => (out(r) ? undefined : r.local),
  RESPONSE_FLAGS: (r) => flowResponseFlags(r.outcome),
  CONNECTION_TERMINATION_DETAILS: (r) => (r.outcome === 'ok' || r.outcome === 'open' ? undefined : r.outcome),
  UPSTREAM_TRANSPORT_FAILURE_REASON: (r) => FAILURE[r.outcome] ?? (r.outcome === 'error' ? `errno ${r.errno}` : undefined),
  CONNECTION_ID: (r) => r.connection_id,
  HOSTNAME: () => HOST,
};

export const FLOW_COMMANDS: readonly string[] = [...Object.keys(SIMPLE), 'START_TIME', 'FLOW'];

export const DEFAULT_FLOW_FORMAT =
  '[%START_TIME%] %FLOW(event)% %FLOW(direction)% %FLOW(protocol)% %DOWNSTREAM_REMOTE_ADDRESS% -> %UPSTREAM_HOST% ' +
  '%UPSTREAM_CLUSTER% %FLOW(outcome)% %RESPONSE_FLAGS% %BYTES_SENT% %BYTES_RECEIVED% %DURATION% ' +
  'srtt_us=%FLOW(srtt_us)% retransmits=%FLOW(retransmits)% pid=%FLOW(pid)% comm=%FLOW(comm)% via=%FLOW(via)%\n';

export interface FlowFormat {
  render(r: FlowRecordView): string;
}

const TOKEN = /%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%/g;

/** Parses once at configuration time; rendering is a loop over closures. */
export function parseFlowFormat(text: string): { ok: true; format: FlowFormat } | { ok: false; error: string } {
  const parts: (string | { get: Getter; max: number | undefined })[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const [whole, name, arg, max] = m;
    if (m.index! > last) parts.push(text.slice(last, m.index));
    last = m.index! + whole.length;
    let get: Getter | undefined = SIMPLE[name!];
    if (name === 'START_TIME') get = (r) => formatTime(Date.parse(r.time), arg);
    else if (name === 'FLOW') {
      if (!arg) return { ok: false, error: '%FLOW(field)% needs a field name, e.g. %FLOW(srtt_us)%' };
      const field = arg;
      get = (r) => {
        const v = (r as unknown as Record<string, unknown>)[field];
        return typeof v === 'number' || typeof v === 'string' ? v : typeof v === 'boolean' ? String(v) : undefined;
      };
    } else if (get && arg !== undefined) return { ok: false, error: `%${name}% takes no argument` };
    if (!get) return { ok: false, error: `%${name}% does not apply to connection flow records; use ${FLOW_COMMANDS.join(', ')}` };
    parts.push({ get, max: max === undefined ? undefined : Number(max) });
  }
  if (last < text.length) parts.push(text.slice(last));
  if (/%[A-Z_]+[(:%]?/.test(parts.filter((p): p is string => typeof p === 'string').join('\u0000'))) {
    return { ok: false, error: 'unterminated or malformed %COMMAND% in flow format' };
  }
  return {
    ok: true,
    format: {
      render(r) {
        let s = '';
        for (const p of parts) {
          if (typeof p === 'string') s += p;
          else {
            const v = p.get(r);
            const t = v === undefined || v === '' ? '-' : String(v);
            s += p.max !== undefined ? t.slice(0, p.max) : t;
          }
        }
        return s;
      },
    },
  };
}

/** A flow log: subscribe it to flow records; lines are dropped (and counted) when the sink falls behind. */
export class FlowLog {
  private constructor(private readonly sink: LineSink, private readonly format: FlowFormat) {}

  /** Throws a one-line error for a bad format or an unopenable path (configuration time). */
  static open(path: string, format: string | undefined): FlowLog {
    const f = parseFlowFormat(format ?? DEFAULT_FLOW_FORMAT);
    if (!f.ok) throw new Error(`flow_log.format: ${f.error}`);
    return new FlowLog(LineSink.file(path), f.format);
  }

  readonly write = (r: FlowRecordView): void => {
    let line = this.format.render(r);
    if (!line.endsWith('\n')) line += '\n';
    this.sink.write(line);
  };

  get stats(): { written: number; dropped: number; writeErrors: number } {
    return this.sink.stats;
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}
