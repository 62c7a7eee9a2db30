#!/bin/sh
# Builds the jail's native helpers with the system C compiler into native/build/ (git-ignored).
# Run at install and by the tests; prints what to install when the compiler or libseccomp is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "native/build.sh: no C compiler ('$cc' not found). Install one: apt-get install gcc libc6-dev (Debian/Ubuntu), dnf install gcc (Fedora)." >&2
  exit 127
fi
mkdir -p "$here/build"

# build NAME SOURCE [LIBS...]: into a temp name, then rename, so a concurrent run never sees a
# half-written binary.
build() {
  out="$here/build/$1"
  src="$here/$2"
  shift 2
  "$cc" -O2 -Wall -Wextra -Werror -o "$out.tmp.$$" "$src" "$@"
  mv -f "$out.tmp.$$" "$out"
  echo "$out"
}

build srt-gw-redirector redirector.c "$here/helper-runtime.c"
build srt-gw-dns-forwarder dns-forwarder.c "$here/helper-runtime.c"
if ! printf '#include <seccomp.h>\nint main(void){return seccomp_api_get() < 0;}\n' | "$cc" -x c -o /dev/null - -lseccomp 2>/dev/null; then
  echo "native/build.sh: libseccomp is missing; the jail's init needs it. Install it: apt-get install libseccomp-dev (Debian/Ubuntu), dnf install libseccomp-devel (Fedora)." >&2
  exit 1
fi
build srt-gw-jail-init jail-init.c "$here/unix-socket-supervisor.c" -pthread -lseccomp
