// node-http-proxy (http-proxy@1) with a keep-alive upstream agent, as its docs recommend
// for throughput; without it every request would open a new upstream connection.
import http from 'node:http';
import httpProxy from 'http-proxy';
import { proxyArgs } from './args.mjs';

const { port, upstreamPort } = proxyArgs();
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent });
proxy.on('error', (_err, _req, res) => {
  if (!res.headersSent) res.writeHead(502);
  res.end();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
