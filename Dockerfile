# syntax=docker/dockerfile:1
# pilotfish: one image for the proxy (sidecar, waypoint), the control plane (file or
# Kubernetes EndpointSlices), the demo pieces, the dev CA and the fast path helper.
# Build stages (TypeScript + production node_modules; the N-API addon; the eBPF objects
# and the helper daemon) feed a runtime stage that carries only their outputs and runs as
# the unprivileged `node` user (uid 1000). The first stages hold only tools and
# dependencies, so a rebuild after a source change reuses their cached layers.

# C toolchain: the N-API addon (cc) and the fast path (clang -target bpf, bpftool, libbpf).
FROM node:20-bookworm-slim AS toolchain
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev make clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev >/dev/null && rm -rf /var/lib/apt/lists/*

# What the runtime needs besides Node: openssl (`pilotfish certs` signs with it) and the
# libraries pf-fastpathd links; the certificate directory compose mounts a volume on.
FROM node:20-bookworm-slim AS runtime-base
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl libbpf1 libelf1 >/dev/null && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
  && install -d -o node -g node /var/lib/pilotfish/certs

FROM node:20-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off: `prepare` would build before the sources are here (done below instead).
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM deps AS build
# The whole context: .dockerignore keeps it to sources and build inputs (no tests, no host
# builds), and tsconfig.build.json decides what compiles, so a new source folder needs no
# change here.
COPY . .
# cli/bundle.mjs: the start path as one file (dist/bundle/, what bin/pilotfish.js runs; see
# bench/README.md "Memory"), built while esbuild (a devDependency) is still installed.
RUN npx tsc -p tsconfig.build.json && node cli/bundle.mjs && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# proxy/native: the SO_ORIGINAL_DST / SO_COOKIE addon, compiled against this Node's headers.
FROM toolchain AS native
WORKDIR /src
COPY proxy/native ./proxy/native
RUN node proxy/native/build.mjs --force && test -f proxy/native/build/original_dst.node

# fastpath: the eBPF objects and pf-fastpathd (loaded only when the container is privileged).
FROM toolchain AS fastpath
WORKDIR /src/fastpath
COPY fastpath/Makefile ./
COPY fastpath/bpf ./bpf
COPY fastpath/native ./native
RUN make -s && rm -f build/fastpath.skel.h

FROM runtime-base
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# Envoy's v3 protos, read at run time by xds-client/src/protos.ts.
COPY --from=build /src/xds-client/protos ./xds-client/protos
COPY --from=native /src/proxy/native/build/original_dst.node ./proxy/native/build/
# fastpath/src/build.ts finds the objects next to the Makefile and bpf/ (its freshness check).
COPY --from=fastpath /src/fastpath/Makefile ./fastpath/
COPY --from=fastpath /src/fastpath/bpf ./fastpath/bpf
COPY --from=fastpath /src/fastpath/build ./fastpath/build
COPY bin ./bin
COPY demo/mesh.yaml ./demo/mesh.yaml
COPY examples/front-proxy.yaml ./examples/front-proxy.yaml
USER node
# 15000 admin, 15001 outbound, 15006 inbound, 15080 waypoint, 18000 xDS
EXPOSE 15000 15001 15006 15080 18000
# The proxy's admin /ready (set PILOTFISH_ADMIN_PORT when admin is elsewhere; the timeout
# allows for a Node start on a busy host). Other roles
# (control plane, demo apps) set their own check (docker-compose.yml, deploy/k8s).
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PILOTFISH_ADMIN_PORT||15000)+'/ready',{signal:AbortSignal.timeout(8000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/pilotfish.js"]
CMD ["--help"]
