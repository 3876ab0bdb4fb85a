/** The live terminal table. */
import type { RouteRow } from './stats.js';

const ms = (n: number): string => (n >= 100 ? `${n.toFixed(0)}ms` : `${n.toFixed(1)}ms`);

export function renderTable(rows: readonly RouteRow[], header: string): string {
  const lines = [header, ''];
  lines.push(`${'route'.padEnd(16)}${'rps'.padStart(7)}${'total'.padStart(8)}${'failed'.padStart(8)}${'p50'.padStart(9)}${'p90'.padStart(9)}${'p99'.padStart(9)}   version split (last 5s)`);
  for (const r of rows) {
    const split = Object.entries(r.split).sort(([a], [b]) => a.localeCompare(b)).map(([v, f]) => `${v} ${(f * 100).toFixed(0).padStart(3)}%`).join('  ');
    lines.push(`${r.route.padEnd(16)}${r.rps.toFixed(1).padStart(7)}${String(r.total).padStart(8)}${String(r.failures).padStart(8)}${ms(r.p50).padStart(9)}${ms(r.p90).padStart(9)}${ms(r.p99).padStart(9)}   ${split}`);
  }
  return lines.join('\n');
}
