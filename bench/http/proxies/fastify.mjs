// @fastify/http-proxy with its defaults (undici upstream via @fastify/reply-from), logging off.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import { proxyArgs } from './args.mjs';

const { port, upstreamPort } = proxyArgs();
const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
await app.register(proxy, { upstream: `http://127.0.0.1:${upstreamPort}` });
await app.listen({ port, host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));
