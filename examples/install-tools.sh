#!/usr/bin/env bash
# Installs the Debian packages sersync-ts needs at run time (rsync; make, g++ and python3 to build the native inotify
# reader) and for its tests (openssh-server, -client),
# when they are missing and we are root. Run by `npm run demo` and `npm test` before anything else.
set -euo pipefail
need=()
command -v rsync >/dev/null || need+=(rsync)
# For the native inotify reader (native/build.mjs, npm's own node-gyp): installed when root, else fs.watch is used.
optional=()
command -v make >/dev/null || optional+=(make)
command -v g++ >/dev/null || optional+=(g++)
command -v python3 >/dev/null || optional+=(python3)
if [ "$(id -u)" = 0 ]; then need+=(${optional[@]+"${optional[@]}"}); elif [ ${#optional[@]} -gt 0 ]; then
  echo "sersync-ts: no ${optional[*]}: the native inotify reader cannot be built; fs.watch is used" >&2
fi
if [ "${1:-}" = "--tests" ]; then
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "sersync-ts: missing ${need[*]}: install them (apt-get install ${need[*]}) and run again" >&2
  exit 1
fi
echo "sersync-ts: installing ${need[*]} with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
