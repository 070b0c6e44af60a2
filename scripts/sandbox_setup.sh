#!/usr/bin/env bash
# Make the local sandbox backend work on this machine. Idempotent: reuses what is there.
#   1. install Debian's bubblewrap (the `bwrap` command: namespaces, seccomp) when missing (root);
#   2. build the local sandbox's own interpreter (`agentrl sandbox venv`: a venv without the
#      project's or the tasks' packages, from the docker image's wheels; a no-op when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null 2>&1; then
  echo "sandbox_setup: apt-get install bubblewrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
bwrap --ro-bind / / --unshare-all true || { echo "sandbox_setup: bwrap cannot create namespaces here"; exit 1; }
.venv/bin/agentrl sandbox venv
