#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for pilotfish: system packages (C/eBPF toolchain,
# benchmark peers, openssl), npm packages from the lockfile (npm ci also compiles the
# TypeScript), and the eBPF fast path objects. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev gcc-multilib make iproute2 iptables openssl
  ethtool util-linux wrk nghttp2-client nginx-light libnginx-mod-stream haproxy docker-compose curl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: not root; skipping system packages (${missing[*]}): the fast path and some benchmarks will report why they cannot run" >&2
  fi
fi

npm ci --no-audit --no-fund
# npm ci runs `prepare` (the TypeScript build); build again in case lifecycle scripts are disabled.
[ -f dist/proxy/src/main.js ] || npm run build

if [ -f fastpath/Makefile ] && command -v clang >/dev/null 2>&1; then
  make -C fastpath >/dev/null || echo "setup: fastpath build failed; pilotfish runs without the fast path" >&2
fi

# Container engine for e2e/containers.test.ts: podman, docker-compose through podman's API
# and the local stand-in for the Dockerfile's base image (kept in podman's store, so only
# the first run pays for it, about 3 minutes). The test skips with the reason otherwise.
if [ "$(id -u)" -eq 0 ] && [ -x scripts/containers-setup.sh ]; then
  scripts/containers-setup.sh || echo "setup: container engine not prepared; e2e/containers.test.ts will skip" >&2
fi
