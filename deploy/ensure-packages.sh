#!/usr/bin/env bash
# Installs the Debian packages given as arguments if they are missing (`make run` calls it with
# fonts-noto-cjk, the CJK font seal images are drawn with). apt-get runs as root, or through sudo
# when sudo works without a password; otherwise a warning says what to install, and nothing fails.
set -euo pipefail

log() { printf '[ensure-packages] %s\n' "$*" >&2; }

installed() {
    command -v dpkg-query >/dev/null 2>&1 || return 1
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for pkg in "$@"; do
    installed "$pkg" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    log "WARNING: missing ${missing[*]} and no apt-get here; install them (or set IDP_SEAL_FONT to a Chinese font file)"
    exit 0
fi
if [[ "$(id -u)" == 0 ]]; then
    run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run=(sudo -n)
else
    log "WARNING: missing ${missing[*]}; not root and no password-less sudo. Run: sudo apt-get install ${missing[*]}"
    exit 0
fi
log "installing ${missing[*]}…"
export DEBIAN_FRONTEND=noninteractive
if ! { "${run[@]}" apt-get install -y --no-install-recommends "${missing[@]}" \
       || { "${run[@]}" apt-get update && "${run[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; }; }; then
    log "WARNING: could not install ${missing[*]}; seal images need a Chinese font (IDP_SEAL_FONT)"
fi
exit 0
