export function freePort(): Promise<number>;
export function get(url: string, timeoutMs?: number): Promise<{ status: number; body: string }>;
export function minimalBootstrap(o: { port: number; adminPort: number; upstreamPort: number }): string;
