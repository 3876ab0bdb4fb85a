/**
 * pilotfish's own log: one JSON object per line on stderr, levels changeable at run time
 * (admin `/logging?level=debug`). A disabled level costs one comparison: callers pass
 * fields, never preformatted strings.
 */
export const LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;
export type Level = (typeof LEVELS)[number];

export class Logger {
  private threshold: number;

  constructor(level: Level = 'info', private readonly sink: (line: string) => void = (l) => process.stderr.write(l + '\n')) {
    this.threshold = LEVELS.indexOf(level);
  }

  get level(): Level {
    return LEVELS[this.threshold] ?? 'info';
  }

  setLevel(level: Level): void {
    this.threshold = LEVELS.indexOf(level);
  }

  enabled(level: Level): boolean {
    return LEVELS.indexOf(level) >= this.threshold;
  }

  log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (LEVELS.indexOf(level) < this.threshold) return;
    this.sink(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warning', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }
}

export function isLevel(s: string): s is Level {
  return (LEVELS as readonly string[]).includes(s);
}
