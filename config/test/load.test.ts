import t from 'tap';
import { createRequire } from 'node:module';
import { Diagnostics } from '../src/validation.js';
import { parseConfigText } from '../src/load.js';

/**
 * The YAML parser is loaded for a parse and dropped afterwards: a sidecar parses its
 * bootstrap once, and the parser's source, compiled functions and module records would
 * otherwise stay in every sidecar's heap (~0.9 MB of live heap, bench/memory/anatomy.mjs).
 */

const cachedYamlFiles = () => Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('/node_modules/yaml/'));

t.test('YAML is parsed, anchors and merge keys included, and the parser is not left loaded', async (t) => {
  const diag = new Diagnostics();
  const text = 'base: &b { port: 80, name: a }\nlisteners:\n- <<: *b\n  name: l1\n';
  t.same(parseConfigText(text, 'yaml', diag), { base: { port: 80, name: 'a' }, listeners: [{ port: 80, name: 'l1' }] });
  t.same(diag.errors, []);
  t.same(cachedYamlFiles(), [], 'no module of the yaml package stays in the module cache');
  t.same(parseConfigText('a: 1', 'yaml', new Diagnostics()), { a: 1 }, 'a second parse loads it again');
  t.same(cachedYamlFiles(), []);
});

t.test('a YAML syntax error is reported with its line, and the parser is still dropped', async (t) => {
  const diag = new Diagnostics();
  t.equal(parseConfigText('a: 1\nb: [1, 2\nc: 3\n', 'yaml', diag), undefined);
  t.equal(diag.errors.length, 1);
  t.match(diag.errors[0]!.message, /cannot parse YAML: .*line/i);
  t.same(cachedYamlFiles(), []);
  const dup = new Diagnostics();
  t.equal(parseConfigText('a: 1\na: 2\n', 'yaml', dup), undefined, 'duplicate keys are refused (uniqueKeys), as Envoy does');
  t.match(dup.errors[0]!.message, /unique|duplicate/i);
});
