#!/bin/sh
# Builds the jail's native helpers with the system C compiler into native/build/ (git-ignored).
# Run at install and by the tests; prints what to install when the compiler is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "native/build.sh: no C compiler ('$cc' not found). Install one: apt-get install gcc (Debian/Ubuntu), dnf install gcc (Fedora)." >&2
  exit 127
fi
mkdir -p "$here/build"
# Build into a temp name and rename, so a concurrent run never sees a half-written binary.
out="$here/build/srt-gw-redirector"
"$cc" -O2 -Wall -Wextra -Werror -o "$out.tmp.$$" "$here/redirector.c"
mv -f "$out.tmp.$$" "$out"
echo "$out"
