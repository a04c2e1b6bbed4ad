#!/usr/bin/env bash
# Installs the Debian packages sersync-ts needs at run time (rsync) and for its tests (openssh-server, -client),
# when they are missing and we are root. Run by `npm run demo` and `npm test` before anything else.
set -euo pipefail
need=()
command -v rsync >/dev/null || need+=(rsync)
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
