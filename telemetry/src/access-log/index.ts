/**
 * HCM `access_log` entries -> compiled loggers. Everything (format parsing, filters,
 * opening files) happens here at configuration time; per request a logger runs its
 * filter, renders one line and appends it to a buffered sink.
 */
import { readFileSync } from 'node:fs';
import type { TypedExtension } from '../../../config/src/index.js';
import type { LogContext } from '../types.js';
import { compileFilter, type LogFilter } from './filter.js';
import { DEFAULT_FORMAT, parseFormat } from './format.js';
import { compileJsonFormat } from './json-format.js';
import { LineSink } from './sink.js';

export { parseFormat, DEFAULT_FORMAT, COMMANDS, formatTime, type CompiledFormat, type ParseResult } from './format.js';
export { compileJsonFormat } from './json-format.js';
export { compileFilter } from './filter.js';
export { LineSink, type SinkStats } from './sink.js';

const FILE_TYPE = 'envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT_TYPE = 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const STDERR_TYPE = 'envoy.extensions.access_loggers.stream.v3.StderrAccessLog';

/** An HCM access_log entry; `filter` is Envoy's AccessLog.filter when the decoder keeps it. */
export type AccessLogEntry = TypedExtension & { readonly filter?: unknown };

export interface AccessLogger {
  readonly sink: LineSink;
  readonly filter: LogFilter | undefined;
  render(ctx: LogContext): string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
function field(o: Obj, snake: string): unknown {
  return o[snake] ?? o[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
}

function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** SubstitutionFormatString (or the deprecated `format`/`json_format` fields of FileAccessLog). */
function compileLogFormat(cfg: Obj, path: string, errors: string[]): ((ctx: LogContext) => string) | undefined {
  const lf = field(cfg, 'log_format');
  let text: string | undefined;
  let json: unknown;
  let where = `${path}.log_format`;
  if (isObj(lf)) {
    const src = field(lf, 'text_format_source');
    if (isObj(src)) {
      const inline = field(src, 'inline_string');
      const filename = field(src, 'filename');
      if (typeof inline === 'string') text = inline;
      else if (typeof filename === 'string') {
        try {
          text = readFileSync(filename, 'utf8');
        } catch (e) {
          errors.push(`${where}.text_format_source.filename: cannot read ${filename}: ${(e as Error).message}`);
          return undefined;
        }
      } else {
        errors.push(`${where}.text_format_source: expected inline_string or filename`);
        return undefined;
      }
      where += '.text_format_source';
    } else if (typeof field(lf, 'text_format') === 'string') {
      text = field(lf, 'text_format') as string;
      where += '.text_format';
    } else if (field(lf, 'json_format') !== undefined) {
      json = field(lf, 'json_format');
      where += '.json_format';
    }
  } else if (typeof field(cfg, 'format') === 'string') {
    text = field(cfg, 'format') as string;
    where = `${path}.format`;
  } else if (field(cfg, 'json_format') !== undefined) {
    json = field(cfg, 'json_format');
    where = `${path}.json_format`;
  }
  if (json !== undefined) {
    const r = compileJsonFormat(json, where);
    errors.push(...r.errors);
    return r.format?.render;
  }
  const r = parseFormat(text ?? DEFAULT_FORMAT);
  if (!r.ok) {
    errors.push(`${where}: ${r.error}`);
    return undefined;
  }
  // Envoy appends nothing to a user format: a line without "\n" runs into the next one, which is what it does too.
  return r.format.render;
}

/**
 * Compiles the entries of one HCM. `sinks` is shared across HCMs so two loggers naming
 * one file share one buffer and one descriptor.
 */
export function compileAccessLogs(entries: readonly AccessLogEntry[], path: string, errors: string[], sinks: Map<string, LineSink>): AccessLogger[] {
  const out: AccessLogger[] = [];
  entries.forEach((e, i) => {
    const p = `${path}[${i}]`;
    const type = shortType(e.typeUrl);
    let target: string;
    if (type === STDOUT_TYPE) target = '/dev/stdout';
    else if (type === STDERR_TYPE) target = '/dev/stderr';
    else if (type === FILE_TYPE) {
      const fp = field(e.config, 'path');
      if (typeof fp !== 'string' || fp === '') {
        errors.push(`${p}.typed_config.path: is required`);
        return;
      }
      target = fp;
    } else {
      errors.push(`${p}.typed_config: access logger ${type} not supported by pilotfish (supported: ${STDOUT_TYPE}, ${STDERR_TYPE}, ${FILE_TYPE})`);
      return;
    }
    const render = compileLogFormat(e.config, `${p}.typed_config`, errors);
    const filter = e.filter === undefined ? undefined : compileFilter(e.filter, `${p}.filter`, errors);
    if (!render || (e.filter !== undefined && !filter)) return;
    let sink = sinks.get(target);
    if (!sink) {
      try {
        sink = LineSink.file(target);
      } catch (err) {
        errors.push(`${p}.typed_config.path: cannot open ${target}: ${(err as Error).message}`);
        return;
      }
      sinks.set(target, sink);
    }
    out.push({ sink, filter, render });
  });
  return out;
}

/** Runs on the request path: filter, render, append. Never throws at the proxy. */
export function logRequest(loggers: readonly AccessLogger[], ctx: LogContext): void {
  for (const l of loggers) {
    try {
      if (l.filter && !l.filter(ctx)) continue;
      l.sink.write(l.render(ctx));
    } catch {
      l.sink.stats.dropped++;
    }
  }
}
