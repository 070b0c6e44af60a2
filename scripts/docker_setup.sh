#!/usr/bin/env bash
# Make a Docker engine answer and the sandbox images exist. Idempotent: reuses what is there.
#   1. install Debian's docker.io (+ debootstrap for the registry-free base) when missing;
#   2. start dockerd in the background when no engine answers, and wait for it;
#   3. `agentrl sandbox build` for the python variant (agentrl-sandbox:latest) and the browser
#      variant (agentrl-sandbox-browser:latest: + Debian chromium/chromium-driver, for the GUI
#      browser tier's docker backend); each is a no-op when its image for the current sources
#      exists. `--no-build` skips steps 3-4, `--no-browser` builds only the python variant;
#   4. `agentrl env image agentrl/Calculator-v0`: the env server image the container tests use
#      (agentrl without torch; a no-op when its image for the current sources exists).
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
  setsid nohup dockerd >"$LOG" 2>&1 &  # own session: outlives the shell job that started it
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "docker_setup: dockerd did not come up"; tail -n 30 "$LOG"; exit 1; }
fi
echo "docker_setup: engine $(docker version --format '{{.Server.Version}}')"

case "${1:-}" in
  --no-build) ;;
  --no-browser)
    .venv/bin/agentrl sandbox build
    .venv/bin/agentrl env image agentrl/Calculator-v0
    ;;
  *)
    .venv/bin/agentrl sandbox build
    .venv/bin/agentrl sandbox build --variant browser
    .venv/bin/agentrl env image agentrl/Calculator-v0
    ;;
esac
