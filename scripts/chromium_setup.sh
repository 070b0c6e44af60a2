#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver for the GUI environment's
# browser tier (agentrl_envs.gui). Idempotent: does nothing when both are already present.
# Needs root (or sudo) and access to Debian's apt mirrors; no browser is downloaded from
# anywhere else (selenium-manager / playwright downloads do not work offline).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium chromium-driver
/usr/bin/chromium --version
