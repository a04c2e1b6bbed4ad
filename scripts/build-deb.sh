#!/usr/bin/env bash
# `npm run release`, second step: release/sersync-ts_<version>_<arch>.deb from the single executable that
# scripts/build-sea.mjs made, laid out from packaging/debian/ and built with dpkg-deb. Without dpkg-deb it says so
# and builds nothing (scripts/check-release.sh then skips the .deb check, saying so too).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v dpkg-deb >/dev/null; then
  echo "build-deb: dpkg-deb is missing (apt-get install dpkg-dev): no .deb built" >&2
  exit 0
fi
version=$(node -p 'require("./package.json").version')
node_arch=$(node -p 'process.arch')
case "$node_arch" in
  x64) arch=amd64 ;;
  arm64) arch=arm64 ;;
  *) echo "build-deb: no Debian architecture for $node_arch" >&2; exit 1 ;;
esac
sea="release/sersync-ts-$version-linux-$node_arch"
[ -x "$sea" ] || { echo "build-deb: $sea is missing: run node scripts/build-sea.mjs first" >&2; exit 1; }

root=release/.build/deb
rm -rf "$root"
doc="$root/usr/share/doc/sersync-ts"
install -D -m 0755 "$sea" "$root/usr/bin/sersync-ts"
install -D -m 0644 examples/systemd/sersync-ts.service "$root/usr/lib/systemd/system/sersync-ts.service"
install -D -m 0644 packaging/debian/confxml.xml "$root/etc/sersync-ts/confxml.xml"
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
install -D -m 0644 examples/logrotate "$doc/examples/logrotate"
install -D -m 0644 examples/sysctl "$doc/examples/sysctl"
install -D -m 0644 confxml.example.xml "$doc/examples/confxml.example.xml"
gzip -9n < README.md > "$doc/README.md.gz"
mkdir -p "$root/usr/share/man/man1"
sed "s/@VERSION@/$version/" packaging/debian/sersync-ts.1 | gzip -9n > "$root/usr/share/man/man1/sersync-ts.1.gz"

install -d -m 0755 "$root/DEBIAN"
for script in postinst prerm postrm; do install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"; done
echo /etc/sersync-ts/confxml.xml > "$root/DEBIAN/conffiles"
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_kb/" packaging/debian/control > "$root/DEBIAN/control"
chmod -R u=rwX,go=rX "$root/usr" "$root/etc"
chmod 0755 "$root/usr/bin/sersync-ts"

deb="release/sersync-ts_${version}_${arch}.deb"
# zstd: seconds where xz takes over a minute on the 110 MB runtime, for a .deb about 40 % larger; dpkg reads it
# since 1.21.18 (Debian 12, Ubuntu 22.04), not on Debian 11.
dpkg-deb --root-owner-group -Zzstd --build "$root" "$deb"
echo "build-deb: $deb ($(du -h "$deb" | cut -f1))"
