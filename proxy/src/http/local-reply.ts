/**
 * local_reply_config (Envoy's LocalReplyImpl): every reply the proxy makes itself (404 NR,
 * 503 UH/UF, 504 UT, filter replies such as RBAC's 403, direct_response and redirects,
 * which Envoy also sends as local replies) goes through the mappers. The first mapper
 * whose access-log filter matches rewrites the status, the body and adds headers; then
 * the body is formatted with the mapper's body_format_override, else body_format, else
 * left as is. Filters and formats are compiled once, with telemetry's access-log compilers.
 */
import type { HeaderValueOption, LocalReplyConfig, SubstitutionFormat } from '../../../config/src/index.js';
import { compileFilter, compileJsonFormat, parseFormat, type LogContext } from '../../../telemetry/src/index.js';

/** %LOCAL_REPLY_BODY% is read from this key of the request headers copy given to the formatter. */
const BODY_KEY = 'x-pilotfish-local-reply-body';
const BODY_COMMAND = `%REQ(${BODY_KEY})%`;

interface Formatter {
  readonly render: (ctx: LogContext) => string;
  readonly contentType: string;
}

interface Mapper {
  readonly filter: (ctx: LogContext) => boolean;
  readonly statusCode: number | undefined;
  readonly body: string | undefined;
  readonly format: Formatter | undefined;
  readonly headersToAdd: readonly HeaderValueOption[];
}

export interface LocalReplyOutcome {
  status: number;
  body: string;
  /** Set when a body format produced the body. */
  contentType: string | undefined;
  headersToAdd: readonly HeaderValueOption[];
}

const NO_HEADERS: readonly HeaderValueOption[] = [];

function withBodyCommand(v: unknown): unknown {
  if (typeof v === 'string') return v.split('%LOCAL_REPLY_BODY%').join(BODY_COMMAND);
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = withBodyCommand(x);
    return o;
  }
  return v;
}

function compileFormat(f: SubstitutionFormat, path: string, errors: string[]): Formatter | undefined {
  if (f.json !== undefined) {
    const r = compileJsonFormat(withBodyCommand(f.json), `${path}.json_format`);
    errors.push(...r.errors);
    return r.format ? { render: r.format.render, contentType: f.contentType ?? 'application/json' } : undefined;
  }
  const r = parseFormat(withBodyCommand(f.text ?? '%LOCAL_REPLY_BODY%') as string);
  if (!r.ok) {
    errors.push(`${path}.text_format: ${r.error}`);
    return undefined;
  }
  return { render: r.format.render, contentType: f.contentType ?? 'text/plain' };
}

export class LocalReplyRewriter {
  private constructor(private readonly mappers: readonly Mapper[], private readonly format: Formatter | undefined) {}

  /** Compiles the config; throws an Error naming the field when a filter or format is invalid. */
  static compile(cfg: LocalReplyConfig, path = 'local_reply_config'): LocalReplyRewriter {
    const errors: string[] = [];
    const mappers: Mapper[] = [];
    cfg.mappers.forEach((m, i) => {
      const p = `${path}.mappers[${i}]`;
      const filter = compileFilter(m.filter, `${p}.filter`, errors);
      const format = m.bodyFormatOverride ? compileFormat(m.bodyFormatOverride, `${p}.body_format_override`, errors) : undefined;
      if (filter) mappers.push({ filter, statusCode: m.statusCode, body: m.body, format, headersToAdd: m.headersToAdd });
    });
    const format = cfg.bodyFormat ? compileFormat(cfg.bodyFormat, `${path}.body_format`, errors) : undefined;
    if (errors.length > 0) throw new Error(errors.join('; '));
    return new LocalReplyRewriter(mappers, format);
  }

  /**
   * Rewrites one local reply. `ctx.stream.responseCode` must hold the original status (the
   * filters see it); it is set to the rewritten one before the body is formatted.
   */
  rewrite(ctx: LogContext & { readonly stream: { responseCode: number } }, status: number, body: string): LocalReplyOutcome {
    let format = this.format;
    let headersToAdd = NO_HEADERS;
    for (const m of this.mappers) {
      let hit = false;
      try {
        hit = m.filter(ctx);
      } catch {
        hit = false;
      }
      if (!hit) continue;
      if (m.statusCode !== undefined) status = m.statusCode;
      if (m.body !== undefined) body = m.body;
      if (m.format) format = m.format;
      headersToAdd = m.headersToAdd;
      break;
    }
    if (!format) return { status, body, contentType: undefined, headersToAdd };
    ctx.stream.responseCode = status;
    const request = { ...ctx.request, headers: { ...ctx.request.headers, [BODY_KEY]: body } };
    let rendered: string;
    try {
      rendered = format.render({ ...ctx, request });
    } catch {
      rendered = body;
    }
    return { status, body: rendered, contentType: format.contentType, headersToAdd };
  }
}
