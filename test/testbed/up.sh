#!/usr/bin/env bash
# Brings up the real components the tests and the demo use, idempotently, as root
# on a fresh Debian 12 machine: the Docker engine, an OCI registry with htpasswd
# auth (plus a read-only twin that refuses pushes), and a busybox base image,
# kept locally and pushed to the open registry: an exact-hit key pins every base
# to its registry digest (agent/src/cache/pinned-inputs.ts), so the tests and the
# demo name the registry copy.
# Then node 2 (node2.sh): a second engine, Debian 13's dockerd with buildx on
# its own socket, so the tests build with BuildKit as well as the classic builder.
# Prints nothing but progress on stderr; writes the facts the tests need to
# $WARMSTART_TESTBED_DIR/env (shell syntax).
set -euo pipefail

TB=${WARMSTART_TESTBED_DIR:-/var/lib/warmstart-testbed}
REG_PORT=${WARMSTART_TESTBED_REGISTRY_PORT:-5000}
RO_PORT=${WARMSTART_TESTBED_READONLY_PORT:-5001}
OPEN_PORT=${WARMSTART_TESTBED_OPEN_PORT:-5002}
# The local tag other users (LXD, older scripts) know, and the registry copy tests use.
BASE_LOCAL=${WARMSTART_TESTBED_BASE_LOCAL:-warmstart-testbed/base:busybox}
BASE_IMAGE=127.0.0.1:$OPEN_PORT/$BASE_LOCAL
say() { printf 'testbed: %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v htpasswd >/dev/null || need_pkgs+=(apache2-utils)
command -v git >/dev/null || need_pkgs+=(git)
command -v curl >/dev/null || need_pkgs+=(curl)
# test/integration/registry/registry-tls.test.ts makes its test CA and certificates with it
command -v openssl >/dev/null || need_pkgs+=(openssl)
# the bare-node test (test/release/rootfs.sh) makes a Debian 12 root filesystem with it
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
# node 2: its own bridge, and the keys that check the next release's archive
command -v ip >/dev/null || need_pkgs+=(iproute2)
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || need_pkgs+=(debian-archive-keyring)
# the cloud-hypervisor SSH channel tests run their own sshd (as the test user, on a loopback high port)
sshd_new=no
[ -x /usr/sbin/sshd ] || { need_pkgs+=(openssh-server); sshd_new=yes; }
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
# Installed only for its binary: the package's own service (port 22) is stopped and disabled.
# A machine that had sshd before (its admins log in with it) is left alone.
if [ "$sshd_new" = yes ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  else
    service ssh stop >/dev/null 2>&1 || true
    update-rc.d ssh disable >/dev/null 2>&1 || true
  fi
fi
command -v docker >/dev/null || { say "no docker client after install"; exit 1; }

mkdir -p "$TB"
chmod 0700 "$TB"

# --- Docker engine -----------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  setsid nohup dockerd --iptables=false --ip-masq=false >"$TB/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { say "dockerd did not answer; see $TB/dockerd.log"; tail -20 "$TB/dockerd.log" >&2; exit 1; }
fi

# --- Registries --------------------------------------------------------------
if [ ! -s "$TB/registry-password" ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TB/registry-password"
  chmod 0600 "$TB/registry-password"
fi
REG_USER=warmstart-test
REG_PASS=$(cat "$TB/registry-password")
if [ ! -s "$TB/htpasswd" ] || ! htpasswd -vbB "$TB/htpasswd" "$REG_USER" "$REG_PASS" >/dev/null 2>&1; then
  htpasswd -Bbn "$REG_USER" "$REG_PASS" >"$TB/htpasswd"
fi
mkdir -p "$TB/registry-data" "$TB/open-registry-data"

write_config() { # file port readonly auth datadir
  {
    echo "version: 0.1"
    echo "log: { level: warn, accesslog: { disabled: true } }"
    echo "storage:"
    echo "  filesystem: { rootdirectory: $5 }"
    echo "  delete: { enabled: true }"
    [ "$3" = yes ] && echo "  maintenance: { readonly: { enabled: true } }"
    echo "http: { addr: 127.0.0.1:$2 }"
    [ "$4" = yes ] && echo "auth: { htpasswd: { realm: warmstart-testbed, path: $TB/htpasswd } }"
    true
  } >"$1"
}
start_registry() { # name port readonly auth datadir
  local cfg="$TB/$1.yml"
  write_config "$cfg" "$2" "$3" "$4" "$5"
  if curl -s -o /dev/null "http://127.0.0.1:$2/v2/"; then return 0; fi
  say "starting registry $1 on 127.0.0.1:$2"
  setsid nohup docker-registry serve "$cfg" >"$TB/$1.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$2/v2/" && return 0; sleep 0.25; done
  say "registry $1 did not answer; see $TB/$1.log"; tail -20 "$TB/$1.log" >&2; exit 1
}
start_registry registry "$REG_PORT" no yes "$TB/registry-data"
start_registry registry-readonly "$RO_PORT" yes yes "$TB/registry-data"
start_registry registry-open "$OPEN_PORT" no no "$TB/open-registry-data"

# --- Base image from busybox-static -----------------------------------------
if ! docker image inspect "$BASE_LOCAL" >/dev/null 2>&1; then
  say "building $BASE_LOCAL from busybox-static"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/tmp" "$root/root" "$root/home" "$root/var/tmp" "$root/usr/bin" "$root/usr/sbin"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin 2>/dev/null || (cd "$root/bin" && for a in $(./busybox --list); do [ -e "$a" ] || ln -s busybox "$a"; done)
  ln -sf /bin/busybox "$root/sbin/init"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  printf '::sysinit:/bin/true\n::respawn:/bin/sleep 3600\n' >"$root/etc/inittab"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE_LOCAL" >/dev/null
  rm -rf "$root"
fi
# Pushed on every run: a no-op when the registry has it, a fix when the local image was rebuilt.
docker tag "$BASE_LOCAL" "$BASE_IMAGE"
docker push -q "$BASE_IMAGE" >/dev/null || { say "could not push $BASE_IMAGE to 127.0.0.1:$OPEN_PORT"; exit 1; }

cat >"$TB/env" <<ENV
WARMSTART_TESTBED_DIR=$TB
WARMSTART_TESTBED_REGISTRY=127.0.0.1:$REG_PORT
WARMSTART_TESTBED_READONLY_REGISTRY=127.0.0.1:$RO_PORT
WARMSTART_TESTBED_OPEN_REGISTRY=127.0.0.1:$OPEN_PORT
WARMSTART_TESTBED_REGISTRY_USER=$REG_USER
WARMSTART_TESTBED_REGISTRY_PASSWORD_FILE=$TB/registry-password
WARMSTART_TESTBED_BASE_IMAGE=$BASE_IMAGE
WARMSTART_TESTBED_BASE_LOCAL=$BASE_LOCAL
ENV
chmod 0600 "$TB/env"

# --- Node 2 ------------------------------------------------------------------
# Not optional: a test that needs node 2 must find it, and a machine that cannot
# fetch or start it must say so here, not skip it.
N2=${WARMSTART_NODE2_DIR:-$TB/node2}
if ! WARMSTART_TESTBED_DIR="$TB" WARMSTART_NODE2_DIR="$N2" bash "$(dirname "${BASH_SOURCE[0]}")/node2.sh"; then
  say "node 2 could not be fetched or started (test/testbed/node2.sh failed, see above; its daemon log, if it started: $N2/dockerd.log)"
  exit 1
fi
n2fact() { sed -n "s/^$1=//p" "$N2/env" | tail -n 1; }
N2_HOST=$(n2fact WARMSTART_NODE2_DOCKER_HOST)
N2_PLUGINS=$(n2fact WARMSTART_NODE2_CLI_PLUGIN_DIR)
if [ -z "$N2_HOST" ] || [ -z "$N2_PLUGINS" ] || [ ! -x "$N2_PLUGINS/docker-buildx" ]; then
  say "node 2 started but $N2/env lacks its socket or buildx plugin dir"; exit 1
fi
{
  echo "WARMSTART_TESTBED_NODE2_DOCKER_HOST=$N2_HOST"
  echo "WARMSTART_TESTBED_NODE2_PLUGIN_DIRS=$N2_PLUGINS"
  echo "WARMSTART_TESTBED_NODE2_DOCKER_CLI=$(n2fact WARMSTART_NODE2_DOCKER_CLI)"
  echo "WARMSTART_TESTBED_NODE2_DATA_ROOT=$(n2fact WARMSTART_NODE2_DATA_ROOT)"
} >>"$TB/env"
# Node 3: the same engine again (node 2's binaries, its own socket, data root
# and bridge), so a BuildKit cache is built on one node and used on another.
N3=$TB/node3
if ! WARMSTART_TESTBED_DIR="$TB" WARMSTART_NODE2_DIR="$N3" WARMSTART_NODE2_ROOT="$N2/root" WARMSTART_NODE2_NAME=node3 \
  WARMSTART_NODE2_BRIDGE=ws-node3 WARMSTART_NODE2_BRIDGE_ADDR=10.213.78.1/24 bash "$(dirname "${BASH_SOURCE[0]}")/node2.sh"; then
  say "node 3 could not be started (test/testbed/node2.sh failed, see above; its daemon log: $N3/dockerd.log)"
  exit 1
fi
echo "WARMSTART_TESTBED_NODE3_DOCKER_HOST=$(sed -n 's/^WARMSTART_NODE2_DOCKER_HOST=//p' "$N3/env" | tail -n 1)" >>"$TB/env"
# LXD for the incus backend; warns, never fails. The demo needs none of it.
if [ "${WARMSTART_TESTBED_SKIP_LXD:-}" != 1 ]; then
  WARMSTART_TESTBED_DIR="$TB" bash "$(dirname "${BASH_SOURCE[0]}")/lxd.sh"
fi
say "ready (engine $(docker version -f '{{.Server.Version}}'), node 2 $N2_HOST, registry 127.0.0.1:$REG_PORT, base $BASE_IMAGE)"
