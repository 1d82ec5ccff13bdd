#!/usr/bin/env bash
# Installs every Debian and npm package that building and testing smoldoc need,
# on a fresh Debian 12 machine, as root, non-interactively. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
APT_PKGS=(
    build-essential pkg-config git ca-certificates
    libjansson-dev libsqlite3-dev sqlite3 libpoppler-glib-dev poppler-utils
    libzmq3-dev libssl-dev libpcre2-dev libutf8proc-dev
    python3 python3-numpy python3-jinja2 python3-zmq
    nodejs valgrind clang libclang-rt-14-dev jq
)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package only where no npm came with nodejs (NodeSource's nodejs
# bundles npm, and Debian's npm then conflicts with it).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm test fixtures (tokenizer references), pinned by tests/node/package-lock.json.
if [ -f tests/node/package.json ]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: done"
