#!/usr/bin/env node
// Copies Envoy's v3 API protos (and the xds, googleapis and protoc-gen-validate protos
// they import) into xds-client/protos/, from the copies @grpc/grpc-js-xds publishes on
// npm: no package exists that is made to carry Envoy's protos, and the proxy should not
// need an xDS *client library* at run time only to find .proto files. Run it after
// bumping the devDependency; it rewrites xds-client/protos/PROVENANCE.md.
//
//   node scripts/vendor-envoy-protos.mjs
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
const out = path.join(root, 'xds-client', 'protos');
const trees = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
let files = 0;
for (const t of trees) {
  const from = path.join(pkgDir, 'deps', t);
  if (!existsSync(from)) throw new Error(`${from} is missing: has @grpc/grpc-js-xds changed its layout?`);
  cpSync(from, path.join(out, t), { recursive: true, filter: (src) => statSync(src).isDirectory() || src.endsWith('.proto') });
  const count = (d) => readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? count(path.join(d, e.name)) : 1), 0);
  files += count(path.join(out, t));
}
writeFileSync(path.join(out, 'PROVENANCE.md'), `# Where these protos come from

Copied by \`scripts/vendor-envoy-protos.mjs\` from the npm package
\`@grpc/grpc-js-xds@${pkg.version}\` (its \`deps/\` folder, which the grpc-node project
fills from git submodules of envoyproxy/data-plane-api, cncf/xds, googleapis/googleapis
and bufbuild/protoc-gen-validate at the commits that release pins). ${files} files, .proto only.
Licences: Apache-2.0 (all four projects).

Layout: one include directory per project (\`envoy-api/\`, \`xds/\`, \`googleapis/\`,
\`protoc-gen-validate/\`); \`google/protobuf/*.proto\` come from protobufjs.
`);
console.log(`vendored ${files} proto files from @grpc/grpc-js-xds@${pkg.version} into ${path.relative(root, out)}`);
