#!/usr/bin/env bash
# Make the local sandbox backend work on this machine. Idempotent: reuses what is there.
#   1. install Debian's bubblewrap (the `bwrap` command: namespaces, seccomp) when missing (root);
#   2. build the local sandbox's own interpreter (`agentrl sandbox venv`: a venv without the
#      project's or the tasks' packages, from the docker image's wheels; a no-op when it exists);
#   3. start one local sandbox and run a cell (`agentrl sandbox check`): proves this machine lets
#      bwrap make its namespaces as the sandbox's unprivileged uid.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sandbox_setup: bubblewrap is missing; install it as root (apt-get install bubblewrap)"; exit 1
  fi
  echo "sandbox_setup: apt-get install bubblewrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
.venv/bin/agentrl sandbox venv
.venv/bin/agentrl sandbox check --backend local
