#!/usr/bin/env bash
# Checks what `npm run release` built, used the way an operator uses it (issue 17), outside the checkout and with no
# Node.js on PATH for the program under test:
#   (a) the single file: --version names the native reader, --check of the example config, a burst synced to an
#       rsync daemon (with auth) on 127.0.0.1, started with -d, the log saying backend "inotify";
#   (b) the .deb: dpkg -i, the shipped config refused until edited, systemd-analyze verify of the installed unit, the
#       same sync with /usr/bin/sersync-ts, dpkg -r keeping the edited conffile, dpkg --purge; skipped, saying so,
#       only where dpkg is missing;
#   (c) the npm package: npm pack, npm install -g into a temporary prefix with the project's Node 24, npx --version
#       from the tarball, the same sync with the installed command and the native reader.
# Every failure stops the script with a message and the logs that explain it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# The project's Node 24 and npm for the tooling; the program under test gets its own PATH (below).
export PATH="$repo/node_modules/.bin:$PATH"
version=$(node -p 'require("./package.json").version')
node_arch=$(node -p 'process.arch')
deb_arch=$(case "$node_arch" in x64) echo amd64 ;; arm64) echo arm64 ;; *) echo "$node_arch" ;; esac)
sea="$repo/release/sersync-ts-$version-linux-$node_arch"
deb="$repo/release/sersync-ts_${version}_${deb_arch}.deb"

work=$(mktemp -d /tmp/sersync-ts-check-release-XXXXXX)
rsyncd_pid=
daemon_pid=
installed_deb=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  # The rsync daemon writes its log as it exits: wait for it before removing the directory.
  [ -n "$rsyncd_pid" ] && { kill "$rsyncd_pid" 2>/dev/null; wait "$rsyncd_pid" 2>/dev/null; } || true
  [ -n "$installed_deb" ] && dpkg --purge sersync-ts >/dev/null 2>&1 || true
  mountpoint -q "$work/noexec" 2>/dev/null && umount "$work/noexec" || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "check-release: FAIL: $*" >&2
  for f in "${logs_to_show[@]}"; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
  exit 1
}
logs_to_show=()
ok() { echo "check-release: ok: $*"; }

# No Node on the program's PATH: the standard directories, without node, npm and npx (this machine has a system
# Node 20 in /usr/bin, which a single file must not need).
nonode="$work/path"
mkdir "$nonode"
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    name=${f##*/}
    case "$name" in node | nodejs | npm | npx | corepack) continue ;; esac
    [ -e "$nonode/$name" ] || ln -s "$f" "$nonode/$name"
  done
done
clean_env=(env -i "PATH=$nonode" "HOME=$work")
if "${clean_env[@]}" sh -c 'command -v node' >/dev/null; then fail "node is still on the clean PATH"; fi

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

# One rsync daemon with auth for all three checks, one module each.
rsyncd_port=$(free_port)
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf 'rsync_backup:%s\n' "$password" > "$work/rsyncd.secrets"
printf '%s\n' "$password" > "$work/client.pas"
chmod 600 "$work/rsyncd.secrets" "$work/client.pas"
{
  echo "log file = $work/rsyncd.log"
  echo "lock file = $work/rsyncd.lock"
  echo "reverse lookup = no"
  for module in sea deb npm; do
    mkdir -p "$work/recv/$module"
    printf '[%s]\n path = %s\n read only = no\n use chroot = no\n munge symlinks = no\n uid = root\n gid = root\n' "$module" "$work/recv/$module"
    printf ' auth users = rsync_backup\n secrets file = %s\n strict modes = yes\n' "$work/rsyncd.secrets"
  done
} > "$work/rsyncd.conf"
rsync --daemon --no-detach "--config=$work/rsyncd.conf" "--port=$rsyncd_port" --address=127.0.0.1 > "$work/rsyncd.out" 2>&1 &
rsyncd_pid=$!
logs_to_show+=("$work/rsyncd.out" "$work/rsyncd.log")
wait_for 10 "the rsync daemon on 127.0.0.1:$rsyncd_port" rsync "rsync://127.0.0.1:$rsyncd_port/"

# sync_check LABEL [ENV...] -- COMMAND...: COMMAND watches a fresh tree and mirrors it into module LABEL; a burst
# of files (odd names included) must arrive, with the native reader. -d when LABEL is sea, in the foreground else.
sync_check() {
  local label=$1
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local dir="$work/$label" conf="$work/$label/confxml.xml" log="$work/$label/daemon.log"
  mkdir -p "$dir/src" "$dir/state"
  logs_to_show+=("$log")
  sed -e "s#@SRC@#$dir/src#" -e "s#@MODULE@#$label#" -e "s#@PORT@#$rsyncd_port#" -e "s#@PASSFILE@#$work/client.pas#" \
    -e "s#@STATE@#$dir/state#" -e "s#@HOSTPORT@#$(free_port)#" > "$conf" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1"?>
<head version="2.5">
    <host hostip="127.0.0.1" port="@HOSTPORT@"></host>
    <sersync>
        <localpath watch="@SRC@">
            <remote ip="127.0.0.1" name="@MODULE@"/>
        </localpath>
        <rsync>
            <commonParams params="-artuz"/>
            <auth start="true" users="rsync_backup" passwordfile="@PASSFILE@"/>
            <userDefinedPort start="true" port="@PORT@"/>
            <timeout start="true" time="30"/>
        </rsync>
        <failLog path="@STATE@/rsync_fail_log.sh" timeToExecute="1"/>
    </sersync>
</head>
EOF
  cd "$dir"
  if [ "$label" = sea ]; then
    "${envs[@]}" "$@" -d -o "$conf" --log-file "$log" --pid-file "$dir/pid" > "$dir/parent.out" 2>&1 ||
      fail "$label: -d exited $? ($(cat "$dir/parent.out"))"
    daemon_pid=$(cat "$dir/pid")
  else
    "${envs[@]}" "$@" -o "$conf" > "$log" 2>&1 &
    daemon_pid=$!
  fi
  cd "$repo"
  wait_for 30 "$label: the daemon watching" grep -q '"msg":"watching ' "$log"
  grep -q '"backend":"inotify"' "$log" || fail "$label: the daemon does not watch with the native reader"
  mkdir -p "$dir/src/a/b" "$dir/src/c"
  for i in $(seq 1 200); do echo "file $i" > "$dir/src/a/b/f$i.txt"; done
  for name in '#notes' ';x' '$(id)' '-rf' 'w[1].txt' 'with space' "$(printf 'caf\xe9')"; do echo "$name" > "$dir/src/c/$name"; done
  ln -s a/b/f1.txt "$dir/src/link"
  wait_for 60 "$label: the burst at the receiver" diff -r "$dir/src" "$work/recv/$label"
  kill -TERM "$daemon_pid"
  if [ "$label" = sea ]; then
    wait_for 20 "$label: the daemon to stop" sh -c "! kill -0 $daemon_pid"
  else
    local code=0
    wait "$daemon_pid" || code=$?
    [ "$code" -eq 0 ] || fail "$label: SIGTERM: exit $code, expected 0"
  fi
  daemon_pid=
  grep -q '"msg":"stopped"' "$log" || fail "$label: no \"stopped\" in the log after SIGTERM"
  ok "$label: $(find "$dir/src" -mindepth 1 | wc -l) entries synced to an rsync daemon with auth, backend inotify, clean stop"
}

# (a) the single file, from a directory outside the checkout.
[ -x "$sea" ] || fail "$sea is missing: run npm run release"
cd "$work"
said=$("${clean_env[@]}" "$sea" --version)
[ "$said" = "sersync-ts $version (native inotify reader)" ] || fail "single file --version: $said"
ok "single file: $said ($(du -h "$sea" | cut -f1))"
mkdir -p "$work/example/source" "$work/example/mirror"
sed "s#/tmp/sersync-ts-demo#$work/example#g" "$repo/confxml.example.xml" > "$work/example/confxml.xml"
"${clean_env[@]}" "$sea" --check -o "$work/example/confxml.xml" > "$work/example/check.out" || fail "single file --check of confxml.example.xml: exit $?"
grep -q 'valid' "$work/example/check.out" || fail "single file --check printed: $(cat "$work/example/check.out")"
ok "single file: --check of confxml.example.xml"
code=0
"${clean_env[@]}" "$sea" --frobnicate 2>/dev/null || code=$?
[ "$code" -eq 64 ] || fail "single file: an unknown option exits $code, expected 64"
# A noexec TMPDIR (hardened /tmp) cannot hold the reader: the fallback must be said, not silent.
mkdir "$work/noexec"
if mount -t tmpfs -o size=1m,noexec tmpfs "$work/noexec" 2>/dev/null; then
  said=$("${clean_env[@]}" "TMPDIR=$work/noexec" "$sea" --version 2>"$work/noexec.err") || { umount "$work/noexec"; fail "single file with a noexec TMPDIR: exit $?"; }
  left=$(ls -A "$work/noexec")
  umount "$work/noexec"
  [ "$said" = "sersync-ts $version (fs.watch fallback)" ] || fail "single file with a noexec TMPDIR: --version says $said"
  grep -q 'noexec TMPDIR' "$work/noexec.err" || fail "single file with a noexec TMPDIR does not say why: $(cat "$work/noexec.err")"
  [ -z "$left" ] || fail "single file with a noexec TMPDIR left $left behind"
  ok "single file: with a noexec TMPDIR it says so and falls back to fs.watch, leaving nothing behind"
else
  echo "check-release: SKIPPED the noexec TMPDIR check: cannot mount a tmpfs here (not root?)"
fi
cd "$repo"
sync_check sea "${clean_env[@]}" -- "$sea"

# (b) the Debian package.
if ! command -v dpkg >/dev/null; then
  echo "check-release: SKIPPED (b) the .deb: dpkg is missing on this machine"
else
  [ -f "$deb" ] || fail "$deb is missing: run npm run release (it needs dpkg-deb)"
  if dpkg -s sersync-ts >/dev/null 2>&1; then fail "sersync-ts is already installed here; this check installs and purges it: dpkg --purge sersync-ts first"; fi
  installed_deb=1
  dpkg -i "$deb" > "$work/dpkg-i.out" 2>&1 || { cat "$work/dpkg-i.out" >&2; fail "dpkg -i $deb"; }
  said=$("${clean_env[@]}" /usr/bin/sersync-ts --version)
  [ "$said" = "sersync-ts $version (native inotify reader)" ] || fail "/usr/bin/sersync-ts --version: $said"
  ok ".deb: dpkg -i; /usr/bin/sersync-ts --version: $said"
  unit=/usr/lib/systemd/system/sersync-ts.service
  grep -q '^ExecStartPre=/usr/bin/sersync-ts --check -o /etc/sersync-ts/confxml.xml$' "$unit" || fail "$unit has no ExecStartPre --check"
  grep -q '^StateDirectory=sersync-ts$' "$unit" || fail "$unit has no StateDirectory=sersync-ts"
  grep -q '^Environment=SERSYNC_TS_FOREGROUND=1$' "$unit" || fail "$unit does not keep -d in the foreground (Environment=SERSYNC_TS_FOREGROUND=1)"
  code=0
  "${clean_env[@]}" /usr/bin/sersync-ts --check -o /etc/sersync-ts/confxml.xml > "$work/shipped.out" 2>&1 || code=$?
  [ "$code" -eq 78 ] && grep -q 'EDIT-ME' "$work/shipped.out" ||
    fail "the shipped config must be refused until edited (exit 78 naming EDIT-ME); got exit $code: $(cat "$work/shipped.out")"
  ok ".deb: the shipped /etc/sersync-ts/confxml.xml is refused until edited: $(head -n 1 "$work/shipped.out")"
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
    ok ".deb: systemd-analyze verify $unit"
  else
    echo "check-release: SKIPPED systemd-analyze verify: systemd-analyze is missing"
  fi
  [ -f /usr/share/man/man1/sersync-ts.1.gz ] || fail "no man page"
  sync_check deb "${clean_env[@]}" -- /usr/bin/sersync-ts
  echo '<!-- edited by check-release -->' >> /etc/sersync-ts/confxml.xml
  dpkg -r sersync-ts > "$work/dpkg-r.out" 2>&1 || { cat "$work/dpkg-r.out" >&2; fail "dpkg -r sersync-ts"; }
  [ ! -e /usr/bin/sersync-ts ] || fail "dpkg -r left /usr/bin/sersync-ts"
  [ ! -e "$unit" ] || fail "dpkg -r left $unit"
  grep -q 'edited by check-release' /etc/sersync-ts/confxml.xml || fail "dpkg -r did not keep the edited /etc/sersync-ts/confxml.xml"
  ok ".deb: dpkg -r removed the program and the unit, kept the edited /etc/sersync-ts/confxml.xml"
  dpkg --purge sersync-ts > /dev/null
  installed_deb=
  [ ! -e /etc/sersync-ts/confxml.xml ] || fail "dpkg --purge left /etc/sersync-ts/confxml.xml"
  ok ".deb: dpkg --purge removed the config"
fi

# (c) the npm package: npm itself keeps this environment (its registry settings); only the program's is stripped.
tarball=$(npm pack --silent --pack-destination "$work" 2>"$work/npm-pack.err" | tail -n 1) || { cat "$work/npm-pack.err" >&2; fail "npm pack"; }
tar -tzf "$work/$tarball" > "$work/tarball.txt"
for f in package/dist/cli/main.js package/bin/sersync-ts.cjs package/native/inotify.c package/native/binding.gyp package/native/build.mjs; do
  grep -qx "$f" "$work/tarball.txt" || fail "npm pack: $tarball has no $f"
done
if grep -q '^package/native/build/' "$work/tarball.txt"; then fail "npm pack: $tarball ships a built native/build/"; fi
ok "npm pack: $tarball ships dist/ and the reader's source"
npm install -g "$work/$tarball" --prefix "$work/npm-prefix" --no-audit --no-fund > "$work/npm-install.out" 2>&1 ||
  { cat "$work/npm-install.out" >&2; fail "npm install -g $tarball"; }
node_dir=$(dirname "$(realpath "$repo/node_modules/.bin/node")")
npm_env=(env -i "PATH=$node_dir:$nonode" "HOME=$work")
said=$("${npm_env[@]}" "$work/npm-prefix/bin/sersync-ts" --version)
[ "$said" = "sersync-ts $version (native inotify reader)" ] || fail "npm install -g: sersync-ts --version: $said"
ok "npm install -g: $said"
said=$(cd "$work" && npx --yes --cache "$work/npm-cache" --package "$work/$tarball" -- sersync-ts --version 2>"$work/npx.err") ||
  { cat "$work/npx.err" >&2; fail "npx sersync-ts --version"; }
[ "$said" = "sersync-ts $version (native inotify reader)" ] || fail "npx sersync-ts --version: $said"
ok "npx --package $tarball sersync-ts --version: $said"
sync_check npm "${npm_env[@]}" -- "$work/npm-prefix/bin/sersync-ts"

echo "check-release: all checks passed"
