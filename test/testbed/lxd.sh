#!/usr/bin/env bash
# Brings up a real LXD for the incus backend's tests (the same REST API as
# Incus for the calls we use), idempotently, as root on Debian 12: installs
# the lxd package, starts the daemon, initialises it with a `dir` pool and a
# default profile holding only the root disk (the automatic init wants a
# bridge and finds no free subnet here), and imports a busybox base image.
# Appends WARMSTART_TESTBED_LXD_SOCKET / _IMAGE to $TB/env. Called at the end
# of up.sh, after the env file is written. When LXD cannot run here it warns
# and writes an empty socket, so the rest of the testbed still comes up and
# the LXD tests fail saying why (they never skip silently).
set -uo pipefail

TB=${WARMSTART_TESTBED_DIR:-/var/lib/warmstart-testbed}
SOCKET=/var/lib/lxd/unix.socket
IMAGE=${WARMSTART_TESTBED_LXD_IMAGE:-warmstart-testbed-base}
say() { printf 'testbed: %s\n' "$*" >&2; }
mkdir -p "$TB"
touch "$TB/env"

give_up() {
  say "WARNING: LXD is not available: $*"
  say "WARNING: the LXD tests (incus backend, machine up) will fail; see $TB/lxd.log"
  sed -i '/^WARMSTART_TESTBED_LXD_/d' "$TB/env"
  printf 'WARMSTART_TESTBED_LXD_SOCKET=\nWARMSTART_TESTBED_LXD_UNAVAILABLE=%s\n' "$*" >>"$TB/env"
  exit 0
}

# --- package -----------------------------------------------------------------
if ! command -v lxd >/dev/null; then
  say "installing lxd"
  export DEBIAN_FRONTEND=noninteractive
  # update only when the package lists do not know lxd yet
  apt-cache show lxd >/dev/null 2>&1 || apt-get update -qq >/dev/null 2>&1
  apt-get install -y -qq lxd >>"$TB/lxd-install.log" 2>&1 || give_up "apt-get install lxd failed (see $TB/lxd-install.log)"
  command -v lxd >/dev/null || give_up "no lxd binary after installing the package"
fi

# --- daemon --------------------------------------------------------------------
# `lxc info` talks to the socket: it answers only when the daemon is up.
if ! lxc info >/dev/null 2>&1; then
  say "starting lxd"
  setsid nohup lxd --group root >>"$TB/lxd.log" 2>&1 </dev/null &
  lxd waitready --timeout 60 >/dev/null 2>&1 || give_up "lxd did not answer on $SOCKET within 60 s"
  lxc info >/dev/null 2>&1 || give_up "lxd started but 'lxc info' fails"
fi

# --- init (once) ---------------------------------------------------------------
if ! lxc storage show default >/dev/null 2>&1; then
  say "initialising lxd (dir pool, no network)"
  lxd init --preseed >>"$TB/lxd.log" 2>&1 <<'EOF' || give_up "lxd init --preseed failed"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: { path: /, pool: default, type: disk }
EOF
fi

# --- base image from busybox-static ---------------------------------------------
if ! lxc image info "$IMAGE" >/dev/null 2>&1; then
  say "importing LXD image $IMAGE from busybox-static"
  [ -x /bin/busybox ] || give_up "no /bin/busybox (busybox-static) to build the base image"
  work=$(mktemp -d)
  root="$work/rootfs"
  mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/tmp" "$root/root" "$root/home" "$root/var/tmp" \
    "$root/usr/bin" "$root/usr/sbin" "$root/proc" "$root/sys" "$root/dev" "$root/run"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin 2>/dev/null ||
    (cd "$root/bin" && for a in $(./busybox --list); do [ -e "$a" ] || ln -s busybox "$a"; done)
  ln -sf /bin/busybox "$root/sbin/init"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  # busybox init runs the inittab; the respawned sleep keeps the container
  # running (init with nothing to do would not exit, but this makes it explicit)
  printf '::sysinit:/bin/true\n::respawn:/bin/sleep 3600\n' >"$root/etc/inittab"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cat >"$work/metadata.yaml" <<EOF
architecture: x86_64
creation_date: $(date +%s)
properties:
  description: warmstart testbed base (busybox-static)
  os: busybox
  release: static
EOF
  tar -C "$work" -cf "$work/meta.tar" metadata.yaml
  tar -C "$root" -cf "$work/rootfs.tar" .
  lxc image import "$work/meta.tar" "$work/rootfs.tar" --alias "$IMAGE" >>"$TB/lxd.log" 2>&1
  rc=$?
  rm -rf "$work"
  [ $rc -eq 0 ] || give_up "lxc image import of $IMAGE failed"
fi

sed -i '/^WARMSTART_TESTBED_LXD_/d' "$TB/env"
printf 'WARMSTART_TESTBED_LXD_SOCKET=%s\nWARMSTART_TESTBED_LXD_IMAGE=%s\n' "$SOCKET" "$IMAGE" >>"$TB/env"
say "LXD ready ($(lxd --version), socket $SOCKET, image $IMAGE)"
