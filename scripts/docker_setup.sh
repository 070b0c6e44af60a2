#!/usr/bin/env bash
# Make a Docker engine answer and the sandbox image exist. Idempotent: reuses what is there.
#   1. install Debian's docker.io (+ debootstrap for the registry-free base) when missing;
#   2. start dockerd in the background when no engine answers, and wait for it;
#   3. `agentrl sandbox build` (a no-op when the image for the current sources already exists).
# Needs root for steps 1-2 (CI runs as root); a user with a running engine only needs step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${DOCKERD_LOG:-/tmp/agentrl-dockerd.log}

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "docker_setup: apt-get install ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker_setup: starting dockerd (log: $LOG)"
  nohup dockerd >"$LOG" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "docker_setup: dockerd did not come up"; tail -n 30 "$LOG"; exit 1; }
fi
echo "docker_setup: engine $(docker version --format '{{.Server.Version}}')"

if [ "${1:-}" != "--no-build" ]; then
  .venv/bin/agentrl sandbox build
fi
