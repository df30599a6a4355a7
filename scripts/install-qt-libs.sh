#!/usr/bin/env bash
# Installs the Debian libraries PySide6's wheels load, only those missing: the offscreen
# platform for tests; with --xcb also a real X window (Xvfb screenshots). apt needs root.
set -euo pipefail
declare -A need=(
    [libEGL.so.1]=libegl1 [libGL.so.1]=libgl1 [libfontconfig.so.1]=libfontconfig1
    [libfreetype.so.6]=libfreetype6 [libxkbcommon.so.0]=libxkbcommon0
    [libdbus-1.so.3]=libdbus-1-3 [libglib-2.0.so.0]=libglib2.0-0 [libX11.so.6]=libx11-6
)
if [[ "${1:-}" == "--xcb" ]]; then
    need+=(
        [libxcb-cursor.so.0]=libxcb-cursor0 [libxcb-icccm.so.4]=libxcb-icccm4
        [libxcb-keysyms.so.1]=libxcb-keysyms1 [libxcb-image.so.0]=libxcb-image0
        [libxcb-render-util.so.0]=libxcb-render-util0 [libxcb-xkb.so.1]=libxcb-xkb1
        [libxkbcommon-x11.so.0]=libxkbcommon-x11-0 [libxcb-shape.so.0]=libxcb-shape0
    )
    command -v xvfb-run >/dev/null || need[xvfb-run]="xvfb xauth"
fi
cache=$(ldconfig -p | awk '{print $1}')
missing=()
for lib in "${!need[@]}"; do
    grep -qxF "$lib" <<<"$cache" || [[ "$lib" == xvfb-run && -n "$(command -v xvfb-run)" ]] ||
        missing+=(${need[$lib]})
done
if ((${#missing[@]})); then
    echo "installing libraries Qt needs: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
