#!/usr/bin/env node
// Summarise a .cpuprofile: node bench/http/profile-summary.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarizeProfile, renderProfile } from './lib/cpuprofile.mjs';

const [file, top] = process.argv.slice(2);
if (!file) { console.error('usage: node bench/http/profile-summary.mjs FILE.cpuprofile [TOP]'); process.exit(2); }
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const s = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), repo);
process.stdout.write(renderProfile(file, s, file, Number(top ?? 30)));
