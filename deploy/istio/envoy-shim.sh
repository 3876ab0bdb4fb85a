#!/bin/sh
# Installed as /usr/local/bin/envoy in Istio's sidecar image (deploy/istio/Dockerfile):
# pilot-agent runs it with Envoy's flags and pilotfish reads them. PILOTFISH_DISABLE=1 runs
# Istio's own Envoy, kept as envoy.orig, instead (pod annotation pilotfish.io/disable).
if [ "${PILOTFISH_DISABLE:-0}" = 1 ]; then exec "${ENVOY_ORIG:-/usr/local/bin/envoy.orig}" "$@"; fi
exec "${PILOTFISH_NODE:-/usr/local/bin/node}" "${PILOTFISH_HOME:-/opt/pilotfish}/bin/pilotfish.js" "$@"
