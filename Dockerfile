# syntax=docker/dockerfile:1
# pilotfish: one image for the proxy (sidecar, waypoint), the control plane and the demo
# pieces. Build stage compiles TypeScript; the runtime stage carries only dist/, bin/,
# production node_modules, and runs as the unprivileged `node` user (uid 1000).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off: `prepare` would build before the sources are here; nothing else needs them.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY xds-client ./xds-client
COPY controlplane ./controlplane
COPY certs ./certs
COPY filters ./filters
COPY fastpath/src ./fastpath/src
COPY telemetry ./telemetry
COPY proxy ./proxy
COPY demo ./demo
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY demo/mesh.yaml ./demo/mesh.yaml
USER node
# 15000 admin, 15001 outbound, 15006 inbound, 15080 waypoint, 18000 xDS
EXPOSE 15000 15001 15006 15080 18000
ENTRYPOINT ["node", "/app/bin/pilotfish.js"]
CMD ["--help"]
