import { createRequire } from 'node:module';

// re2-wasm is CommonJS; RE2 gives Envoy's safe_regex semantics (linear time, no backtracking),
// so a hostile path can never make route matching exponential. Loaded on first use: its
// WebAssembly heap costs ~17 MB of RSS, which a config without regexes should not pay.
const require = createRequire(import.meta.url);
type Re2Constructor = new (pattern: string, flags?: string) => Re2;
let RE2: Re2Constructor | undefined;
function re2(): Re2Constructor {
  return (RE2 ??= (require('re2-wasm') as { RE2: Re2Constructor }).RE2);
}

export interface Re2 {
  test(s: string): boolean;
  exec(s: string): RegExpExecArray | null;
  replace(s: string, replacement: string): string;
}

/** Compiles an RE2 pattern; returns the error text instead of throwing. */
export function compileRe2(pattern: string, flags = ''): Re2 | string {
  try {
    return new (re2())(pattern, `u${flags}`);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Envoy's safe_regex matches the whole string; anchor the pattern accordingly. */
export function compileFullMatch(pattern: string, ignoreCase = false): Re2 | string {
  return compileRe2(`^(?:${pattern})$`, ignoreCase ? 'i' : '');
}
