/**
 * Decoders never throw on bad input: they collect path-prefixed problems so that the
 * CLI can print `static_resources.clusters[0].connect_timeout: ...` and the xDS client
 * can put the same text into a NACK's error_detail.
 */

export interface Problem {
  /** Field path in Envoy's own (snake_case) names, e.g. `static_resources.clusters[0].type`. */
  readonly path: string;
  readonly message: string;
}

export type Validation<T> =
  | { readonly ok: true; readonly value: T; readonly warnings: readonly Problem[] }
  | { readonly ok: false; readonly errors: readonly Problem[]; readonly warnings: readonly Problem[] };

export function formatProblem(p: Problem): string {
  return p.path === '' ? p.message : `${p.path}: ${p.message}`;
}

/** Thrown inside a decoder to abandon the current branch; caught at the decoder's edge. */
export class DecodeError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

/**
 * Collects errors and warnings while a decoder walks a document. Errors accumulate so
 * that a user sees every problem at once, not one per run.
 */
export class Diagnostics {
  readonly errors: Problem[] = [];
  readonly warnings: Problem[] = [];

  error(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  warn(path: string, message: string): void {
    this.warnings.push({ path, message });
  }

  result<T>(value: T): Validation<T> {
    return this.errors.length === 0
      ? { ok: true, value, warnings: this.warnings }
      : { ok: false, errors: this.errors, warnings: this.warnings };
  }
}
