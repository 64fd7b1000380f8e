#!/usr/bin/env bash
# Prepares a Wine prefix that runs Go windows/amd64 test binaries headless:
# installs Wine and the mingw cross-compiler if missing (Debian), creates
# the prefix, makes it report Windows 10 (Go needs 10+), and builds the
# ProcessPrng stub into its system32. Usage: setup.sh PREFIX-DIR
# Afterwards: export WINEPREFIX=PREFIX-DIR PATH=<this dir>:$PATH
set -euo pipefail
prefix=${1:?usage: setup.sh PREFIX-DIR}
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x /usr/lib/wine/wine64 ] || ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    wine64 gcc-mingw-w64-x86-64-win32
fi

mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
export WINEPREFIX="$prefix" WINEDEBUG=-all \
  WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
unset DISPLAY WAYLAND_DISPLAY
/usr/lib/wine/wine64 wineboot --init >/dev/null 2>&1
/usr/lib/wine/wine64 reg add 'HKCU\Software\Wine' /v Version /d win10 /f >/dev/null 2>&1
/usr/lib/wine/wineserver64 -w
x86_64-w64-mingw32-gcc -shared -O2 -s -nostdlib -Wl,--entry,DllEntry \
  -o "$prefix/drive_c/windows/system32/bcryptprimitives.dll" \
  "$here/bcryptprimitives.c" -ladvapi32
echo "export WINEPREFIX=$prefix PATH=$here:\$PATH"
