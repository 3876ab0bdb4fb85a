export function smapsBreakdown(pid: number): { nodeBinary: number; otherFiles: number; wasm: number; anon: number };
export function rssMB(pid: number): number;
export function hwmMB(pid: number): number;
export function privateMB(pid: number): number;
