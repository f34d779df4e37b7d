#!/usr/bin/env bash
# The bare node of test/release/bare-node.test.ts: a Debian 12 (bookworm) root
# filesystem made by debootstrap from Debian's own packages, with what a node
# has before warmstart is installed (git, the docker CLI, systemd) and no
# Node.js at all, imported into the testbed's engine as an image.
#
# Made once: the root filesystem is kept as a tar in $WARMSTART_TESTBED_DIR/
# bare-node/, named after a hash of this script (edit the recipe below and the
# next run makes a new one; delete that folder to take newer Debian packages).
# The image is re-imported from the tar when the engine lacks it.
#
# Prints the image's name on stdout; progress on stderr. Run as root.
set -euo pipefail

TB=${WARMSTART_TESTBED_DIR:-/var/lib/warmstart-testbed}
MIRROR=${WARMSTART_BARE_NODE_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# git and docker.io (for the docker CLI the agent runs; its dockerd is never
# started: the test uses the testbed's engine through its socket), systemd to
# boot the node as a node boots, curl for the health checks. No nodejs.
PACKAGES=ca-certificates,curl,git,docker.io,systemd,systemd-sysv,dbus,procps

say() { printf 'bare-node rootfs: %s\n' "$*" >&2; }

DIR=$TB/bare-node
mkdir -p "$DIR"
KEY=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
TAR=$DIR/rootfs-$SUITE-$KEY.tar
IMAGE=warmstart-testbed/bare-node:$SUITE-$KEY

# One maker at a time: a second test run waits for the first one's rootfs.
exec 9>"$DIR/lock"
flock 9

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

if [ ! -s "$TAR" ]; then
  command -v debootstrap >/dev/null || { say "no debootstrap: run 'bash test/testbed/up.sh' (it installs it)"; exit 1; }
  ROOT=$(mktemp -d "$DIR/root.XXXXXX")
  cleanup() {
    # debootstrap mounts /proc and /sys in the target; a failed run may leave them.
    awk -v r="$ROOT" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$ROOT" "$TAR.tmp"
  }
  trap cleanup EXIT
  t0=$(date +%s)
  say "debootstrap $SUITE from $MIRROR with $PACKAGES (once; takes a few minutes)"
  # Two stages, so that a policy forbidding service starts is in place before
  # any package is configured: docker.io's maintainer script would otherwise
  # try to start a dockerd inside the chroot.
  debootstrap --foreign --variant=minbase --include="$PACKAGES" \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$SUITE" "$ROOT" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 \
    || { say "debootstrap (first stage) failed; see $DIR/debootstrap.log"; tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  printf '#!/bin/sh\n# no service starts while the root filesystem is made\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
  chroot "$ROOT" /debootstrap/debootstrap --second-stage >>"$DIR/debootstrap.log" 2>&1 \
    || { say "debootstrap (second stage) failed; see $DIR/debootstrap.log"; tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  rm -f "$ROOT/usr/sbin/policy-rc.d"
  # The node's own engine never runs: the test hands it the testbed's socket.
  for unit in docker.service docker.socket containerd.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
  done
  # A booted container gets its machine id from systemd; no consoles to serve.
  : >"$ROOT/etc/machine-id"
  ln -sf /dev/null "$ROOT/etc/systemd/system/getty@.service"
  ln -sf /dev/null "$ROOT/etc/systemd/system/console-getty.service"
  echo bare-node >"$ROOT/etc/hostname"
  rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*_Packages
  if [ -e "$ROOT/usr/bin/node" ] || [ -e "$ROOT/usr/local/bin/node" ]; then say "the root filesystem has a node binary"; exit 1; fi
  tar --numeric-owner -C "$ROOT" -cf "$TAR.tmp" .
  mv "$TAR.tmp" "$TAR"
  # Older recipes' tars are of no use any more.
  find "$DIR" -maxdepth 1 -name "rootfs-*.tar" ! -name "$(basename "$TAR")" -delete
  say "made $TAR ($(du -m "$TAR" | cut -f1) MB) in $(($(date +%s) - t0)) s"
fi

say "importing $TAR as $IMAGE"
docker import -c 'CMD ["/bin/bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'LABEL dev.warmstart.testbed=bare-node' "$TAR" "$IMAGE" >/dev/null
echo "$IMAGE"
