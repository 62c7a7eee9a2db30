#!/usr/bin/env bash
# Installs everything srt-gw needs on Debian/Ubuntu: the system packages (bubblewrap, nftables,
# a C compiler, and the clients the tests drive), then npm dependencies and the build.
# Usage: scripts/install.sh            (as root, or with sudo available)
#        SRT_GW_SKIP_APT=1 scripts/install.sh   (packages already installed)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  bubblewrap nftables iproute2 gcc libc6-dev libseccomp-dev   # the jail
  ca-certificates openssl curl wget git python3 python3-pip python3-requests  # clients the jail tests run
  dnsutils iodine procps util-linux bsdutils                  # dig, iodine, ps, setpriv/unshare, script
  prometheus                                                  # monitoring tests (promtool, server)
  faketime                                                    # clock-jump fault tests (libfaketime)
  tinyproxy                                                   # --upstream-proxy tests (a real CONNECT proxy)
  redis-server                                                # serve --state tests (the shared state server)
)

if [ "${SRT_GW_SKIP_APT:-0}" != 1 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "install.sh: no apt-get here; install these yourself: ${packages[*]}" >&2
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "install.sh: srt-gw needs Node.js 20 or newer (found $(node --version))" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build
if [ "$(uname -s)" = Linux ]; then
  # The jail's native helpers; srt-gw doctor (and srt-gw run) refuse to work without them.
  bash native/build.sh
fi
echo "install.sh: done. Try: node dist/bin/srt-gw.js --help"
