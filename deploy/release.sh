#!/usr/bin/env bash
# Makes the release a node installs without Node.js: `npm run release`.
# See usage below and docs/operations.md "Release".
set -euo pipefail
umask 022

usage() {
  cat <<'EOF'
Usage: npm run release [-- options]      (or: bash deploy/release.sh [options])

Makes release/warmstart-<version>-linux-<arch>.tar.gz, one folder
warmstart-<version>-linux-<arch>/ holding:
  bin/warmstart      the command (sh): runs the agent on the bundled Node
  runtime/bin/node   Node.js, from the npm registry's node-linux-<arch>
                     package at the version pinned in package.json
                     ("config": {"releaseNode": ...}), its integrity checked
  dist/              the agent and shared code, compiled (no tests)
  node_modules/      production dependencies (npm ci --omit=dev, lockfile)
  package.json, package-lock.json
  deploy/            install.sh, warmstart.service, warmstart.env.example
  release.json       version, arch, Node version and package integrity, commit
and a .sha256 file beside it. Prints the tarball's path and size.

Install it on a node (no Node.js needed there):
  sudo bash deploy/install.sh --from warmstart-<version>-linux-<arch>.tar.gz

Options:
  --arch x64|arm64   the node's architecture (default: this machine's); the
                     bundled runtime is checked by running it only when it is
                     this machine's
  --out DIR          where the tarball goes (default: release/ in the tree)
  -h, --help         this text

Needs the dev dependencies (npm ci) for the compiler, and the npm registry
(or npm's cache) for the production dependencies and the runtime package.
EOF
}

die() { printf 'release.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'release: %s\n' "$*" >&2; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
ARCH=
OUT=$ROOT/release
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case $1 in
    --arch) need_value "$@"; ARCH=$2; shift 2 ;;
    --arch=*) ARCH=${1#*=}; shift ;;
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed to make a release"
[ -x node_modules/.bin/tsc ] || die "no TypeScript compiler in node_modules: run 'npm ci' first"
pkg() { node -e 'const p = JSON.parse(require("fs").readFileSync("package.json", "utf8")); const v = '"$1"'; if (v === undefined) process.exit(1); console.log(v)'; }
VERSION=$(pkg p.version) || die "package.json has no version"
# The one place the runtime's version is pinned.
NODE_VERSION=$(pkg 'p.config && p.config.releaseNode') || die 'package.json lacks "config": {"releaseNode": "<Node version>"}'
[[ $NODE_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "package.json config.releaseNode must be an exact version (got '$NODE_VERSION')"
HOST_ARCH=$(node -p process.arch)
ARCH=${ARCH:-$HOST_ARCH}
case $ARCH in x64 | arm64) ;; *) die "--arch must be x64 or arm64 (got '$ARCH')" ;; esac
RUNTIME_PKG=node-linux-$ARCH
NAME=warmstart-$VERSION-linux-$ARCH
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TARBALL=$OUT/$NAME.tar.gz

T0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/warmstart-release.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/$NAME
mkdir -p "$STAGE/bin" "$STAGE/dist" "$STAGE/deploy" "$STAGE/runtime/bin"

# 1. The agent, compiled into a private folder (the tree's dist/ is left as it is).
say "compiling the agent (tsc)"
node_modules/.bin/tsc -p tsconfig.json --outDir "$WORK/build" --sourceMap false
cp -R "$WORK/build/agent" "$WORK/build/shared" "$STAGE/dist/"
ENTRY=dist/agent/src/cli/main.js
[ -f "$STAGE/$ENTRY" ] || die "the build left no $ENTRY"
chmod 0755 "$STAGE/$ENTRY"

# 2. Production dependencies, exactly as the lockfile has them. No install
#    scripts: the optional native speed-ups some dependencies would build (ssh2)
#    are for transports the agent does not use (see deploy/install.sh).
say "installing production dependencies (npm ci --omit=dev, linux/$ARCH)"
cp package.json package-lock.json "$STAGE/"
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error --os=linux --cpu="$ARCH") >&2
[ -f "$STAGE/node_modules/@devcontainers/cli/package.json" ] || die "npm ci left no @devcontainers/cli"
for dev in typescript vitest eslint; do
  [ ! -e "$STAGE/node_modules/$dev" ] || die "a dev dependency ($dev) reached the release"
done

# 3. The runtime: the npm registry's platform package of Node.js. npm pack
#    checks the download against the registry's integrity; it is compared
#    again here, so a tampered cache cannot slip through either.
say "fetching $RUNTIME_PKG@$NODE_VERSION (npm pack)"
(cd "$WORK" && npm pack "$RUNTIME_PKG@$NODE_VERSION" --json --loglevel=error >pack.json)
PACKED=$WORK/$(node -p 'require(process.argv[1])[0].filename' "$WORK/pack.json")
EXPECTED=$(npm view "$RUNTIME_PKG@$NODE_VERSION" dist.integrity --loglevel=error)
ACTUAL=sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$PACKED")
[ -n "$EXPECTED" ] && [ "$EXPECTED" = "$ACTUAL" ] || die "$RUNTIME_PKG@$NODE_VERSION: integrity $ACTUAL, the registry says '$EXPECTED'"
mkdir "$WORK/runtime-pkg"
tar -xzf "$PACKED" -C "$WORK/runtime-pkg" package/bin/node package/LICENSE package/package.json
got=$(node -p 'require(process.argv[1]).version' "$WORK/runtime-pkg/package/package.json")
[ "$got" = "$NODE_VERSION" ] || die "$PACKED holds version $got, not $NODE_VERSION"
mv "$WORK/runtime-pkg/package/bin/node" "$STAGE/runtime/bin/node"
mv "$WORK/runtime-pkg/package/LICENSE" "$STAGE/runtime/LICENSE"
chmod 0755 "$STAGE/runtime/bin/node"

# 4. The command. It finds the release through any chain of symlinks
#    (install.sh links PREFIX/bin/warmstart to it) and execs the bundled node,
#    so under systemd the main PID is the agent itself.
cat >"$STAGE/bin/warmstart" <<'EOF'
#!/bin/sh
# warmstart: runs the agent of this release on the Node.js bundled with it
# (made by deploy/release.sh). Works through symlinks to this file.
self=$0
case $self in */*) ;; *) self=$(command -v -- "$self") ;; esac
while [ -L "$self" ]; do
  link=$(readlink -- "$self")
  case $link in /*) self=$link ;; *) self=$(dirname -- "$self")/$link ;; esac
done
root=$(cd -P -- "$(dirname -- "$self")/.." && pwd) || exit 1
# "--" first: node reads an --env-file even among the script's own arguments
# (it stops at "--"), and warmstart has an --env-file of its own.
# WARMSTART_NODE_OPTIONS: node options for the agent alone (the unit sets
# them); unlike NODE_OPTIONS they do not reach the node tools it runs.
set -f
# shellcheck disable=SC2086 # options, split on spaces
exec "$root/runtime/bin/node" ${WARMSTART_NODE_OPTIONS:-} -- "$root/dist/agent/src/cli/main.js" "$@"
EOF
chmod 0755 "$STAGE/bin/warmstart"

# 5. The installer and what it installs, from this tree.
cp deploy/install.sh deploy/warmstart.service deploy/warmstart.env.example "$STAGE/deploy/"
chmod 0755 "$STAGE/deploy/install.sh"

COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
DIRTY=false
if [ -n "$COMMIT" ] && [ -n "$(git status --porcelain --untracked-files=no -- agent shared deploy package.json package-lock.json tsconfig.json 2>/dev/null)" ]; then
  DIRTY=true
fi
NAME="$NAME" VERSION="$VERSION" ARCH="$ARCH" NODE_VERSION="$NODE_VERSION" RUNTIME_PKG="$RUNTIME_PKG" \
  INTEGRITY="$ACTUAL" COMMIT="$COMMIT" DIRTY="$DIRTY" node -e '
const e = process.env;
// Flat, one key a line: deploy/install.sh reads it without a JSON parser.
const release = {
  name: e.NAME,
  version: e.VERSION,
  platform: "linux",
  arch: e.ARCH,
  nodeVersion: e.NODE_VERSION,
  nodePackage: `${e.RUNTIME_PKG}@${e.NODE_VERSION}`,
  nodeIntegrity: e.INTEGRITY,
  entry: "dist/agent/src/cli/main.js",
  commit: e.COMMIT || null,
  // files of the agent differ from that commit
  dirty: e.DIRTY === "true",
};
process.stdout.write(JSON.stringify(release, null, 2) + "\n");
' >"$STAGE/release.json"

# 6. The bundled runtime runs the agent: no PATH, called through a symlink.
if [ "$ARCH" = "$HOST_ARCH" ]; then
  mkdir "$WORK/elsewhere"
  ln -s "$STAGE/bin/warmstart" "$WORK/elsewhere/warmstart"
  got=$(env -i "$WORK/elsewhere/warmstart" --version) || die "bin/warmstart --version failed"
  [ "$got" = "$VERSION" ] || die "bin/warmstart --version printed '$got', expected $VERSION"
  json=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$WORK/elsewhere/warmstart" version --json --env-file none) || die "bin/warmstart version --json failed"
  node_seen=$(printf '%s' "$json" | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).node')
  [ "$node_seen" = "v$NODE_VERSION" ] || die "the agent ran on Node $node_seen, not the bundled v$NODE_VERSION"
  # A fleet runs a runtime with security fixes: only a release Node marks as LTS (process.release.lts is its codename).
  lts=$(env -i "$STAGE/runtime/bin/node" -p 'process.release.lts || ""')
  [ -n "$lts" ] || die "Node $NODE_VERSION is not an LTS release (process.release.lts is unset): pin an LTS version in package.json config.releaseNode"
  say "checked: bin/warmstart --version is $got, on Node $node_seen (LTS '$lts')"
else
  say "not checked by running it: $ARCH is not this machine's architecture ($HOST_ARCH)"
fi

# 7. The tarball: files in name order, owned by root, dated by the commit,
#    so the same tree gives the same bytes.
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" -C "$WORK" -cf - "$NAME" | gzip -n -6 >"$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")

bytes=$(stat -c %s "$TARBALL")
unpacked=$(du -sm "$STAGE" | cut -f1)
say "made in $(($(date +%s) - T0)) s: Node $NODE_VERSION, $(du -sm "$STAGE/node_modules" | cut -f1) MB of dependencies, $unpacked MB unpacked"
printf '%s %s bytes (%s MB)\n' "$TARBALL" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
