# syntax=docker/dockerfile:1
# pilotfish: one image for the proxy (sidecar, waypoint), the control plane (file or
# Kubernetes EndpointSlices), the demo pieces, the dev CA and the fast path helper.
# Three build stages (TypeScript + production node_modules; the N-API addon; the eBPF
# objects and the helper daemon) feed a runtime stage that carries only their outputs
# and runs as the unprivileged `node` user (uid 1000).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off: `prepare` would build before the sources are here (done below instead).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY xds-client ./xds-client
COPY controlplane ./controlplane
COPY certs ./certs
COPY filters ./filters
COPY fastpath/src ./fastpath/src
COPY telemetry ./telemetry
COPY proxy/src ./proxy/src
COPY demo ./demo
COPY deploy/src ./deploy/src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# proxy/native: the SO_ORIGINAL_DST / SO_COOKIE addon, compiled against this Node's headers.
FROM node:20-bookworm-slim AS native
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY proxy/native ./proxy/native
RUN node proxy/native/build.mjs --force && test -f proxy/native/build/original_dst.node

# fastpath: the eBPF objects and pf-fastpathd (loaded only when the container is privileged).
FROM node:20-bookworm-slim AS fastpath
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev gcc libc6-dev make >/dev/null && rm -rf /var/lib/apt/lists/*
WORKDIR /src/fastpath
COPY fastpath/Makefile ./
COPY fastpath/bpf ./bpf
COPY fastpath/native ./native
RUN make -s && rm -f build/fastpath.skel.h

FROM node:20-bookworm-slim
# openssl: `pilotfish certs` signs with it; pf-fastpathd links libbpf and libelf.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl libbpf1 libelf1 >/dev/null && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
  && install -d -o node -g node /var/lib/pilotfish/certs
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
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
# The proxy's admin /ready (set PILOTFISH_ADMIN_PORT when admin is elsewhere). Other roles
# (control plane, demo apps) set their own check (docker-compose.yml, deploy/k8s).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PILOTFISH_ADMIN_PORT||15000)+'/ready',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/pilotfish.js"]
CMD ["--help"]
