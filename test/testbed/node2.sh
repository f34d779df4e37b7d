#!/usr/bin/env bash
# A second Docker engine on this machine, "node 2", that
# builds with BuildKit while the first (Debian 12's engine 20.10, no buildx)
# keeps the classic builder. Idempotent, as root. test/testbed/up.sh runs it
# (so `npm test` brings up both nodes) and merges $N2/env into the testbed's env.
#
# - Fetches the next Debian release's docker.io / docker-cli / docker-buildx /
#   containerd (Go binaries that run on Debian 12) with `apt-get download`
#   through a PRIVATE sources list and private apt state, so the system's apt
#   sources and lists stay untouched; unpacks them with `dpkg -x` under $N2.
#   runc comes from the system (bookworm's 1.1.5): trixie's runc needs glibc 2.38.
# - Starts that dockerd on its own socket, data root, exec root, pid file and a
#   bridge of its own. NEVER `--bridge none`: that removes the first engine's docker0.
# - The buildx plugin is NOT put in any system plugin dir (that would make node 1
#   use buildx too): it stays in $N2/root/usr/libexec/docker/cli-plugins, and a
#   client reaches it through config.json's `cliPluginsExtraDirs` (the agent's
#   WARMSTART_DOCKER_CLI_PLUGIN_DIRS writes it into each job's DOCKER_CONFIG).
#
# Writes KEY=value facts to $N2/env. Stop it: bash node2.sh stop.
#
# Node 3 is a second instance of the same binaries (up.sh runs this script
# again with WARMSTART_NODE2_DIR=$TB/node3, WARMSTART_NODE2_ROOT=$TB/node2/root
# and a bridge of its own): two BuildKit engines, so a BuildKit cache can be
# built on one node and used on another.
set -euo pipefail

TB=${WARMSTART_TESTBED_DIR:-/var/lib/warmstart-testbed}
N2=${WARMSTART_NODE2_DIR:-$TB/node2}
# Where the unpacked packages live (node 3 shares node 2's).
ROOT=${WARMSTART_NODE2_ROOT:-$N2/root}
SUITE=${WARMSTART_NODE2_SUITE:-trixie}
BR=${WARMSTART_NODE2_BRIDGE:-ws-node2}
BR_ADDR=${WARMSTART_NODE2_BRIDGE_ADDR:-10.213.77.1/24}
SOCK=$N2/run/docker.sock
PIDFILE=$N2/run/dockerd.pid
DATA=$N2/data
EXEC=$N2/exec
PLUGINS=$ROOT/usr/libexec/docker/cli-plugins
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
say() { printf '%s: %s\n' "${WARMSTART_NODE2_NAME:-node2}" "$*" >&2; }

# The system's Debian mirror, from a deb822 debian.sources or a one-line
# sources.list: the first http(s) URI that is not the security archive.
# Prints nothing when there is none (the caller falls back to deb.debian.org).
# `bash node2.sh mirror [DEB822_FILE] [LIST_FILE]` prints what it finds.
debian_mirror() { # [deb822 file] [one-line list file]
  local sources=${1:-/etc/apt/sources.list.d/debian.sources} list=${2:-/etc/apt/sources.list}
  {
    [ -r "$sources" ] && awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$sources"
    [ -r "$list" ] &&
      awk '$1 == "deb" { l = $0; sub(/^deb[ \t]+/, "", l); sub(/^\[[^]]*\][ \t]*/, "", l); split(l, a, /[ \t]+/); print a[1] }' "$list"
    true
  } | grep -E '^https?://' | grep -v security | head -n 1 || true
}
if [ "${1:-}" = mirror ]; then
  debian_mirror "${2:-}" "${3:-}"
  exit 0
fi

if [ "${1:-}" = stop ]; then
  if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    pid=$(cat "$PIDFILE"); say "stopping dockerd $pid"; kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  exit 0
fi

for tool in apt-get dpkg ip awk; do
  command -v "$tool" >/dev/null || { say "no $tool on PATH (test/testbed/up.sh installs what node 2 needs)"; exit 1; }
done
mkdir -p "$N2" "$N2/run" "$DATA" "$EXEC"
chmod 0700 "$N2"

# --- Packages (private apt state) --------------------------------------------
if [ ! -x "$ROOT/usr/sbin/dockerd" ] || [ ! -x "$PLUGINS/docker-buildx" ]; then
  mirror=${WARMSTART_NODE2_MIRROR:-$(debian_mirror)}
  mirror=${mirror:-http://deb.debian.org/debian}
  [ -r "$KEYRING" ] || { say "no $KEYRING (package debian-archive-keyring): cannot check $SUITE's signatures"; exit 1; }
  apt_dir=$N2/apt
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  echo "deb [signed-by=$KEYRING] $mirror $SUITE main" >"$apt_dir/sources.list"
  : >"$apt_dir/status"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=$apt_dir/status"
    -o APT::Sandbox::User=root -o Debug::NoLocking=1)
  say "fetching docker.io, docker-cli, docker-buildx, containerd from $mirror $SUITE"
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -qq download docker.io docker-cli docker-buildx containerd)
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  for d in "$apt_dir"/debs/*.deb; do dpkg -x "$d" "$ROOT"; done
  # trixie's runc is not unpacked (we never download it); make sure none is on node 2's PATH.
  rm -f "$ROOT/usr/sbin/runc"
fi

# The daemon's PATH: node 2's binaries first (dockerd, containerd 1.7, its shim,
# docker-proxy), then the system's runc and docker-init (tini).
N2PATH=$ROOT/usr/sbin:$ROOT/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# --- Bridge --------------------------------------------------------------------
if ! ip link show "$BR" >/dev/null 2>&1; then
  say "creating bridge $BR ($BR_ADDR)"
  ip link add "$BR" type bridge
fi
ip addr show dev "$BR" | grep -q "inet ${BR_ADDR%/*}/" || ip addr add "$BR_ADDR" dev "$BR"
ip link set "$BR" up

# --- dockerd -------------------------------------------------------------------
if ! DOCKER_HOST=unix://$SOCK "$ROOT/usr/bin/docker" info >/dev/null 2>&1; then
  # A pid file left by a dockerd that was killed (a session's end) names a dead
  # process, or by now another one: dockerd refuses to start over either.
  if [ -s "$PIDFILE" ]; then
    old=$(cat "$PIDFILE")
    if [ "$(cat "/proc/$old/comm" 2>/dev/null)" = dockerd ]; then
      say "dockerd $old holds $PIDFILE but does not answer on unix://$SOCK; stop it first"; exit 1
    fi
    rm -f "$PIDFILE"
  fi
  say "starting dockerd 26 on unix://$SOCK"
  PATH=$N2PATH setsid nohup "$ROOT/usr/sbin/dockerd" \
    --data-root "$DATA" --exec-root "$EXEC" --pidfile "$PIDFILE" -H "unix://$SOCK" \
    --bridge "$BR" --iptables=false --ip-masq=false \
    >"$N2/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do DOCKER_HOST=unix://$SOCK "$ROOT/usr/bin/docker" info >/dev/null 2>&1 && break; sleep 0.5; done
  DOCKER_HOST=unix://$SOCK "$ROOT/usr/bin/docker" info >/dev/null 2>&1 || { say "dockerd did not answer; see $N2/dockerd.log"; tail -20 "$N2/dockerd.log" >&2; exit 1; }
fi

cat >"$N2/env" <<ENV
WARMSTART_NODE2_DOCKER_HOST=unix://$SOCK
WARMSTART_NODE2_PIDFILE=$PIDFILE
WARMSTART_NODE2_DATA_ROOT=$DATA
WARMSTART_NODE2_BRIDGE=$BR
WARMSTART_NODE2_CLI_PLUGIN_DIR=$PLUGINS
WARMSTART_NODE2_DOCKER_CLI=$ROOT/usr/bin/docker
ENV
say "ready (engine $(DOCKER_HOST=unix://$SOCK "$ROOT/usr/bin/docker" version -f '{{.Server.Version}}'), unix://$SOCK, plugin dir $PLUGINS)"
