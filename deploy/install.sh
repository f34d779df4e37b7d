#!/usr/bin/env bash
# Installs the warmstart agent on a Debian/Ubuntu node, as root: from a
# release tarball (--from, made by deploy/release.sh: it brings its own Node.js)
# or from this source checkout. Idempotent: run it again to update the agent;
# the env file an operator edited is never overwritten. See --help.
set -euo pipefail
umask 022

usage() {
  cat <<'EOF'
Usage: install.sh --from warmstart-<version>-linux-<arch>.tar.gz [options]
       deploy/install.sh [options]        (from a warmstart checkout)
       (as root)

Installs on this Debian/Ubuntu node:
  - the Docker engine (docker.io) and git, if missing, from apt;
  - with --from: the release (made by `npm run release`), unpacked into
    PREFIX/lib/warmstart, with PREFIX/bin/warmstart a symlink to its
    bin/warmstart. It brings its own Node.js: the node needs none, nor npm;
    the unit and the env template are the release's own;
  - without --from: Node.js >= 20.12 from apt if `node` is missing or older
    and apt offers a new enough one (Debian 12 and Ubuntu 24.04 do not: their
    nodejs is 18; then use a release, or install Node 20+ yourself and pass
    --node); the agent: package.json, package-lock.json, dist/ (built first
    if the checkout has none) and its production dependencies (npm ci
    --omit=dev) into PREFIX/lib/warmstart, and the command PREFIX/bin/warmstart;
  - ETC_DIR/env from deploy/warmstart.env.example, only if absent (mode 0600),
    and ETC_DIR/env.example, always (the reference for this version);
  - ETC_DIR/api-token, a random API token (mode 0600), if the env file names
    it (the template does) and it does not exist: `warmstart serve` does not
    start without API authentication;
  - SYSTEMD_DIR/warmstart.service; then, only when systemd runs as PID 1,
    `systemctl daemon-reload` and `systemctl enable --now` of docker (unless
    docker.service is masked: the engine is then the operator's business) and
    warmstart.

Options:
  --from TARBALL     install this release (a local file; see docs/operations.md
                     for fetching one); upgrades whatever is installed
  --prefix DIR       install prefix (default /usr/local)
  --etc-dir DIR      configuration directory (default /etc/warmstart)
  --systemd-dir DIR  where the unit goes (default /etc/systemd/system)
  --node PATH        without --from: the node binary to run the agent with
                     (>= 20.12), when the one on PATH is missing or too old
  --no-start         enable the services but start nothing now (image builds)
  --dry-run          print the numbered plan; change nothing
  -h, --help         this text

Nothing is downloaded but Debian packages (apt) and, without --from, the
agent's npm dependencies (npm registry, or npm's cache).
EOF
}

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
note() { printf '   %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }

PREFIX=/usr/local
ETC_DIR=/etc/warmstart
SYSTEMD_DIR=/etc/systemd/system
DEFAULT_SYSTEMD_DIR=/etc/systemd/system
NODE_ARG=
FROM=
DRY_RUN=0
NO_START=0

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --etc-dir) need_value "$@"; ETC_DIR=$2; shift 2 ;;
    --etc-dir=*) ETC_DIR=${1#*=}; shift ;;
    --systemd-dir) need_value "$@"; SYSTEMD_DIR=$2; shift 2 ;;
    --systemd-dir=*) SYSTEMD_DIR=${1#*=}; shift ;;
    --node) need_value "$@"; NODE_ARG=$2; shift 2 ;;
    --node=*) NODE_ARG=${1#*=}; shift ;;
    --from) need_value "$@"; FROM=$2; shift 2 ;;
    --from=*) FROM=${1#*=}; shift ;;
    --no-start) NO_START=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# Paths end up in a systemd unit, a shell wrapper and sed expressions: keep
# them absolute and plain.
for pair in "--prefix:$PREFIX" "--etc-dir:$ETC_DIR" "--systemd-dir:$SYSTEMD_DIR"; do
  opt=${pair%%:*} dir=${pair#*:}
  [[ $dir =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "$opt must be an absolute path of letters, digits and ._/+- (got '$dir')"
done
PREFIX=${PREFIX%/} ETC_DIR=${ETC_DIR%/} SYSTEMD_DIR=${SYSTEMD_DIR%/}
[ -n "$PREFIX" ] || die "--prefix / is not supported"

# Where the files to install come from: the release's own (unpacked into a
# scratch folder: its release.json and deploy/) or this checkout.
SCRATCH=
trap '[ -z "$SCRATCH" ] || rm -rf "$SCRATCH"' EXIT
if [ -n "$FROM" ]; then
  [ -z "$NODE_ARG" ] || die "--node does not go with --from: the release runs on the Node.js it brings"
  [ -f "$FROM" ] && [ -r "$FROM" ] || die "--from $FROM is not a readable file"
  FROM=$(readlink -f "$FROM")
  # The release's one top folder: the archive's first entry (deploy/release.sh
  # writes them in name order, the folder first).
  TOP=$({ tar -tzf "$FROM" 2>/dev/null || true; } | head -n1)
  TOP=${TOP%%/*}
  [[ $TOP =~ ^warmstart-[A-Za-z0-9.+-]+-linux-(x64|arm64)$ ]] \
    || die "--from $FROM is not a warmstart release (no warmstart-<version>-linux-<arch>/ folder in it; make one with npm run release)"
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/warmstart-install.XXXXXX")
  tar -xzf "$FROM" -C "$SCRATCH" "$TOP/release.json" "$TOP/deploy" 2>/dev/null \
    || die "--from $FROM: no release.json and deploy/ in $TOP/ (a damaged or foreign tarball)"
  SRC=$SCRATCH/$TOP
  field() { sed -n "s/^  \"$1\": \"\\([^\"]*\\)\",\\{0,1\\}\$/\\1/p" "$SRC/release.json" | head -n1; }
  VERSION=$(field version)
  REL_ARCH=$(field arch)
  REL_NODE=$(field nodeVersion)
  [ "$(field name)" = "$TOP" ] && [ -n "$VERSION" ] && [ -n "$REL_NODE" ] \
    || die "--from $FROM: $TOP/release.json does not describe $TOP"
  case $(uname -m) in
    x86_64 | amd64) NODE_ARCH=x64 ;;
    aarch64 | arm64) NODE_ARCH=arm64 ;;
    *) NODE_ARCH=$(uname -m) ;;
  esac
  [ "$REL_ARCH" = "$NODE_ARCH" ] || die "--from $FROM is for linux-$REL_ARCH; this node is linux-$NODE_ARCH"
  for f in deploy/warmstart.service deploy/warmstart.env.example; do
    [ -f "$SRC/$f" ] || die "--from $FROM: $TOP/$f is missing"
  done
else
  SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  [ ! -f "$SRC/release.json" ] \
    || die "$SRC is an unpacked release: install it with --from and its tarball (deploy/install.sh --from $(basename "$SRC").tar.gz)"
  [ -f "$SRC/package.json" ] && grep -q '"name": *"warmstart"' "$SRC/package.json" \
    || die "$SRC is not a warmstart checkout (run deploy/install.sh from inside one, or install a release with --from)"
  for f in package-lock.json deploy/warmstart.service deploy/warmstart.env.example; do
    [ -f "$SRC/$f" ] || die "$SRC/$f is missing"
  done
  VERSION=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$SRC/package.json" | head -n1)
  MIN_NODE=$(sed -n 's/.*"node": *">= *\([0-9][0-9.]*\)".*/\1/p' "$SRC/package.json" | head -n1)
  MIN_NODE=${MIN_NODE:-20.12}
fi

LIB=$PREFIX/lib/warmstart
BIN=$PREFIX/bin/warmstart
UNIT=$SYSTEMD_DIR/warmstart.service
ENTRY=dist/agent/src/cli/main.js

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (it installs packages, writes $PREFIX and $ETC_DIR), or use --dry-run"
fi
# sd_booted(): systemd is PID 1 exactly when this directory exists.
SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1
HAVE_APT=0
command -v apt-get >/dev/null 2>&1 && HAVE_APT=1

# --- steps ---------------------------------------------------------------------
STEP=0
# step DESCRIPTION COMMAND...: prints "N. DESCRIPTION"; runs COMMAND unless --dry-run.
step() {
  STEP=$((STEP + 1))
  printf '%d. %s\n' "$STEP" "$1"
  shift
  [ "$DRY_RUN" = 1 ] || "$@"
}

version_ge() { # A >= B, dotted versions
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}
node_version() { "$1" -p 'process.versions.node' 2>/dev/null || true; }
apt_candidate() { # upstream version apt would install for a package, or empty
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }' \
    | sed -e 's/^(none)$//' -e 's/^[0-9]*://' -e 's/[-+~].*//'
}
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

printf 'warmstart %s installer%s\n' "$VERSION" "$([ "$DRY_RUN" = 1 ] && echo ' -- dry run: nothing is changed')"
if [ -n "$FROM" ]; then
  note "release: $FROM ($TOP, Node $REL_NODE bundled)"
else
  note "source:  $SRC"
fi
note "agent:   $LIB, command $BIN"
note "config:  $ETC_DIR/env"
note "unit:    $UNIT"
if [ "$SYSTEMD_RUNNING" = 1 ]; then note "systemd: running (PID 1)"; else note "systemd: not PID 1 here (the unit is installed, nothing is enabled or started)"; fi
echo

T0=$(date +%s)

# 1. Packages from apt: the Docker engine, git (the agent clones on the host),
#    CA certificates; Node.js if needed (never for a release: it brings its own).
pkgs=()
{ command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1; } || pkgs+=(docker.io)
command -v git >/dev/null 2>&1 || pkgs+=(git)
[ -s /etc/ssl/certs/ca-certificates.crt ] || pkgs+=(ca-certificates)
# Node.js's own Linux builds (the release's runtime) load libatomic.so.1, which
# a minimal Debian lacks (debootstrap's minbase, some cloud images).
if [ -n "$FROM" ] && ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libatomic\.so\.1 ' >/dev/null; then
  pkgs+=(libatomic1) # not grep -q: pipefail
fi

NODE=
NODE_FROM_APT=0
if [ -n "$FROM" ]; then
  NODE=$LIB/runtime/bin/node
elif [ -n "$NODE_ARG" ]; then
  [ -x "$NODE_ARG" ] && [ ! -d "$NODE_ARG" ] || die "--node $NODE_ARG is not an executable file"
  NODE=$(readlink -f "$NODE_ARG")
  case $NODE in /tmp/* | /var/tmp/*)
    die "--node $NODE: the service has a private /tmp and /var/tmp (PrivateTmp) and would not see it; put it under /opt or $PREFIX" ;;
  esac
  v=$(node_version "$NODE")
  [ -n "$v" ] || die "--node $NODE does not run"
  version_ge "$v" "$MIN_NODE" || die "--node $NODE is Node $v; warmstart needs >= $MIN_NODE"
elif command -v node >/dev/null 2>&1 && version_ge "$(node_version "$(command -v node)")" "$MIN_NODE"; then
  NODE=$(command -v node)
else
  NODE_FROM_APT=1
fi

if [ ${#pkgs[@]} -gt 0 ] || [ "$NODE_FROM_APT" = 1 ]; then
  missing="${pkgs[*]:-}"
  [ "$NODE_FROM_APT" = 0 ] || missing="$missing node>=$MIN_NODE"
  [ "$HAVE_APT" = 1 ] || die "no apt-get: this installer supports Debian/Ubuntu; install${missing:+ }$missing yourself$([ -n "$FROM" ] || echo ' (or pass --node)')"
  step "refresh the package lists (apt-get update)" apt-get update -q
fi

if [ "$NODE_FROM_APT" = 1 ]; then
  have=$(command -v node >/dev/null 2>&1 && node_version "$(command -v node)" || true)
  cand=$(apt_candidate nodejs)
  if [ -n "$cand" ] && version_ge "$cand" "$MIN_NODE"; then
    pkgs+=(nodejs)
    NODE=/usr/bin/node
  else
    die "Node.js >= $MIN_NODE is needed: $([ -n "$have" ] && echo "node on PATH is $have" || echo "there is no node on PATH"), and apt offers nodejs ${cand:-(none)}$([ "$DRY_RUN" = 1 ] && echo " (from the current package lists)").
  Debian 12 and Ubuntu 24.04 ship Node 18; this installer downloads nothing but
  packages. Install Node 20+ another way (an internal apt repository, a node
  binary copied onto the image) and re-run with --node /path/to/bin/node, or
  install a release instead, which brings its own Node.js (npm run release,
  then install.sh --from warmstart-<version>-linux-<arch>.tar.gz)."
  fi
fi

if [ ${#pkgs[@]} -gt 0 ]; then
  step "install from apt: ${pkgs[*]}" apt_install "${pkgs[@]}"
elif [ -n "$FROM" ]; then
  step "packages: docker and git are present; nothing to install (Node.js $REL_NODE comes with the release)" true
else
  step "packages: docker, git and node $(node_version "$NODE") are present; nothing to install" true
fi

# npm for the dependencies: next to the node we run, else on PATH, else apt's.
find_npm() {
  local d
  d=$(dirname "$NODE")
  if [ -x "$d/npm" ]; then echo "$d/npm"; elif command -v npm >/dev/null 2>&1; then command -v npm; fi
}
NPM=
[ -n "$FROM" ] || NPM=$(find_npm)
if [ -z "$FROM" ] && [ -z "$NPM" ]; then
  if [ "$HAVE_APT" = 1 ] && { [ "$NODE_FROM_APT" = 1 ] || [ "$NODE" = /usr/bin/node ]; }; then
    install_npm() {
      NPM=$(find_npm)
      [ -n "$NPM" ] && return 0 # the nodejs package brought it
      apt_install npm
      NPM=$(find_npm)
      [ -n "$NPM" ] || die "no npm after installing it"
    }
    step "install npm from apt unless the nodejs package brought it" install_npm
  else
    die "no npm next to $NODE nor on PATH: install the npm that goes with this node"
  fi
fi

# Docker engine running, when systemd is there to run it. A masked
# docker.service is the operator saying the engine is run another way (the
# agent then reaches it at DOCKER_HOST, from the env file): left alone.
if [ "$SYSTEMD_RUNNING" = 1 ]; then
  if [ "$(systemctl is-enabled docker.service 2>/dev/null || true)" = masked ]; then
    step "docker.service is masked: left alone (the engine is run another way)" true
  elif [ "$NO_START" = 1 ]; then
    step "enable docker.service (started at boot; --no-start)" systemctl enable docker.service
  else
    step "enable and start docker.service" systemctl enable --now docker.service
  fi
fi

# 2. The agent: the release unpacked; or built in the checkout if needed, then
#    copied with its production dependencies.
npm_run() { # npm with $NODE first on PATH, so npm's own `#!/usr/bin/env node` picks it
  PATH="$(dirname "$NODE"):$PATH" "$NPM" "$@"
}
build_checkout() {
  (
    cd "$SRC"
    [ -x node_modules/.bin/tsc ] || npm_run ci --no-audit --no-fund
    npm_run run build
  )
  [ -f "$SRC/$ENTRY" ] || die "the build left no $SRC/$ENTRY"
}
if [ -n "$FROM" ]; then
  : # built when the release was made
elif [ ! -f "$SRC/$ENTRY" ]; then
  step "build the agent in $SRC (npm ci with dev dependencies if needed, npm run build)" build_checkout
else
  stale=$(find "$SRC/agent/src" "$SRC/shared/src" -name '*.ts' -newer "$SRC/$ENTRY" -print -quit 2>/dev/null || true)
  [ -z "$stale" ] || warn "$SRC/dist is older than ${stale#"$SRC"/}: installing the dist/ that is there (run 'npm run build' first to install your changes)"
fi

STAGE=$PREFIX/lib/.warmstart.new
OLD=$PREFIX/lib/.warmstart.old
cleanup() {
  [ -z "$SCRATCH" ] || rm -rf "$SCRATCH"
  [ "$DRY_RUN" = 0 ] || return 0
  # Interrupted between the two renames: put the previous agent back.
  if [ ! -e "$LIB" ] && [ -e "$OLD" ]; then mv "$OLD" "$LIB"; fi
  rm -rf "$STAGE" "$OLD"
}
trap cleanup EXIT

same_deps() { # the installed agent has the same dependency set: reuse its node_modules
  [ -f "$LIB/node_modules/.package-lock.json" ] \
    && cmp -s "$SRC/package-lock.json" "$LIB/package-lock.json" \
    && cmp -s "$SRC/package.json" "$LIB/package.json"
}
install_agent() {
  mkdir -p "$PREFIX/lib"
  rm -rf "$STAGE" "$OLD"
  mkdir -m 0755 "$STAGE"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$STAGE/"
  cp -R "$SRC/dist" "$STAGE/dist"
  if same_deps; then
    note "dependencies unchanged: reusing $LIB/node_modules"
    cp -a "$LIB/node_modules" "$STAGE/node_modules"
  else
    # --ignore-scripts: no dependency's install script runs as root here. The
    # ones in the tree (ssh2, cpu-features: optional native speed-ups for SSH
    # transports dockerode does not use on a unix socket; protobufjs: a
    # version notice) are not needed.
    (cd "$STAGE" && npm_run ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
  [ -f "$STAGE/node_modules/@devcontainers/cli/package.json" ] || die "npm ci left no @devcontainers/cli in $STAGE"
  swap_in
}
swap_in() { # the old tree is moved aside only once the new one is complete
  if [ -e "$LIB" ]; then mv "$LIB" "$OLD"; fi
  mv "$STAGE" "$LIB"
  rm -rf "$OLD"
}
install_release() {
  mkdir -p "$PREFIX/lib"
  rm -rf "$STAGE" "$OLD"
  mkdir -m 0755 "$STAGE"
  tar -xzf "$FROM" -C "$STAGE" --strip-components=1 --no-same-owner "$TOP" || die "could not unpack $FROM"
  local f
  for f in bin/warmstart runtime/bin/node "$ENTRY" node_modules/@devcontainers/cli/package.json; do
    [ -f "$STAGE/$f" ] || die "$FROM lacks $TOP/$f"
  done
  local v
  v=$("$STAGE/runtime/bin/node" --version 2>&1) \
    || die "the release's Node.js does not run on this node: $v$(ldd "$STAGE/runtime/bin/node" 2>/dev/null | grep 'not found' | tr -s '\t ' ' ' | sed 's/^/\n  missing:/')"
  [ "$v" = "v$REL_NODE" ] || die "the release's runtime/bin/node is $v, its release.json says $REL_NODE"
  note "Node.js $v runs here"
  swap_in
}
if [ -n "$FROM" ]; then
  step "install the release into $LIB (unpack $(basename "$FROM"); Node.js $REL_NODE in $LIB/runtime)" install_release
else
  step "install the agent into $LIB (package.json, package-lock.json, dist/, npm ci --omit=dev)" install_agent
fi

write_wrapper() {
  mkdir -p "$PREFIX/bin"
  local tmp="$BIN.tmp.$$"
  cat >"$tmp" <<EOF
#!/bin/sh
# warmstart: written by deploy/install.sh (re-run it to update); runs the agent
# installed in $LIB with the node it was installed for.
# "--": node would take warmstart's own --env-file for its option otherwise.
# WARMSTART_NODE_OPTIONS: node options for the agent alone (the unit sets them).
set -f
exec '$NODE' \${WARMSTART_NODE_OPTIONS:-} -- '$LIB/$ENTRY' "\$@"
EOF
  chmod 0755 "$tmp"
  mv -f "$tmp" "$BIN"
}
link_command() { # PREFIX/bin/warmstart -> the release's own command, which finds its node through the link
  mkdir -p "$PREFIX/bin"
  local tmp="$BIN.tmp.$$"
  ln -sfn "$LIB/bin/warmstart" "$tmp"
  mv -Tf "$tmp" "$BIN"
}
if [ -n "$FROM" ]; then
  step "link $BIN -> $LIB/bin/warmstart (runs $LIB/runtime/bin/node $LIB/$ENTRY)" link_command
else
  step "write $BIN (runs $NODE $LIB/$ENTRY)" write_wrapper
fi

# 3. Configuration: the env file is the operator's once it exists.
env_from_template() { # the template with this install's configuration directory
  sed -e "s#/etc/warmstart/#$ETC_DIR/#g" "$SRC/deploy/warmstart.env.example"
}
install_env() {
  if [ ! -d "$ETC_DIR" ]; then install -d -m 0700 "$ETC_DIR"; fi
  if [ ! -e "$ETC_DIR/env" ]; then
    (umask 077 && env_from_template >"$ETC_DIR/env.tmp.$$")
    chmod 0600 "$ETC_DIR/env.tmp.$$"
    mv "$ETC_DIR/env.tmp.$$" "$ETC_DIR/env"
  else
    mode=$(stat -c %a "$ETC_DIR/env")
    [ "$mode" = 600 ] || [ "$mode" = 400 ] || warn "$ETC_DIR/env has mode $mode; it may hold secrets: chmod 600 $ETC_DIR/env"
  fi
  env_from_template >"$ETC_DIR/env.example.tmp.$$"
  chmod 0644 "$ETC_DIR/env.example.tmp.$$"
  mv "$ETC_DIR/env.example.tmp.$$" "$ETC_DIR/env.example"
}
if [ -e "$ETC_DIR/env" ]; then
  step "keep $ETC_DIR/env (exists; never overwritten); refresh $ETC_DIR/env.example" install_env
else
  step "write $ETC_DIR/env from deploy/warmstart.env.example (mode 0600) and $ETC_DIR/env.example" install_env
fi

# `warmstart serve` will not start without API authentication. When the env
# file names $ETC_DIR/api-token (the template does) and there is none yet,
# make one: random, readable by root only.
TOKEN_FILE=$ETC_DIR/api-token
env_names_token_file() {
  if [ -e "$ETC_DIR/env" ]; then cat "$ETC_DIR/env"; else env_from_template; fi \
    | grep -x "WARMSTART_API_TOKEN_FILE=\"\{0,1\}$TOKEN_FILE\"\{0,1\}" >/dev/null # not -q: pipefail
}
make_token() {
  local tmp="$TOKEN_FILE.tmp.$$"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp" && echo >>"$tmp")
  chmod 0600 "$tmp"
  mv "$tmp" "$TOKEN_FILE"
}
if [ ! -e "$TOKEN_FILE" ] && env_names_token_file; then
  step "create $TOKEN_FILE with a random API token (mode 0600; give it to the control plane)" make_token
fi

# 4. The unit, with this install's paths.
install_unit() {
  mkdir -p "$SYSTEMD_DIR"
  local tmp="$UNIT.tmp.$$"
  sed -e "s#^ExecStart=/usr/local/bin/warmstart #ExecStart=$BIN #" \
    -e "s#^EnvironmentFile=-/etc/warmstart/env\$#EnvironmentFile=-$ETC_DIR/env#" \
    "$SRC/deploy/warmstart.service" >"$tmp"
  grep -qx "ExecStart=$BIN serve" "$tmp" && grep -qx "EnvironmentFile=-$ETC_DIR/env" "$tmp" \
    || { rm -f "$tmp"; die "deploy/warmstart.service lacks the ExecStart/EnvironmentFile lines this script rewrites"; }
  chmod 0644 "$tmp"
  mv -f "$tmp" "$UNIT"
}
step "install $UNIT (ExecStart=$BIN serve, EnvironmentFile=-$ETC_DIR/env)" install_unit

# 5. Check the installed command.
check_version() {
  local got
  got=$("$BIN" --version) || die "$BIN --version failed"
  [ "$got" = "$VERSION" ] || die "$BIN --version printed '$got', expected $VERSION"
  note "$BIN --version: $got"
}
step "check: $BIN --version prints $VERSION" check_version

# 6. Services.
WAS_ACTIVE=0
if [ "$SYSTEMD_RUNNING" = 1 ] && [ "$SYSTEMD_DIR" = "$DEFAULT_SYSTEMD_DIR" ]; then
  systemctl is-active --quiet warmstart.service 2>/dev/null && WAS_ACTIVE=1
  step "systemctl daemon-reload" systemctl daemon-reload
  if [ "$NO_START" = 1 ]; then
    step "systemctl enable warmstart.service (started at boot; --no-start)" systemctl enable warmstart.service
  else
    step "systemctl enable --now warmstart.service" systemctl enable --now warmstart.service
  fi
fi

echo
if [ "$DRY_RUN" = 1 ]; then
  echo "Dry run: nothing was changed."
  exit 0
fi
echo "warmstart $VERSION installed in $(($(date +%s) - T0)) s."
if [ "$SYSTEMD_RUNNING" = 0 ]; then
  echo "systemd is not running as PID 1 here: $UNIT was installed but not enabled or started."
  echo "Start the agent by hand with: $BIN serve   (configuration: $ETC_DIR/env)"
elif [ "$SYSTEMD_DIR" != "$DEFAULT_SYSTEMD_DIR" ]; then
  echo "The unit went to $SYSTEMD_DIR, not $DEFAULT_SYSTEMD_DIR: not enabled or started."
elif [ "$NO_START" = 1 ]; then
  echo "Enabled, not started (--no-start): systemctl start warmstart"
elif [ "$WAS_ACTIVE" = 1 ]; then
  echo "warmstart.service was already running the previous version; load this one when no build runs:"
  echo "  systemctl restart warmstart   (running builds end as AGENT_RESTARTED; pushes get the shutdown grace)"
else
  echo "Running: systemctl status warmstart; logs: journalctl -u warmstart -f"
fi
echo "Configuration: $ETC_DIR/env (registry, control plane, ...); every variable is described in $ETC_DIR/env.example."
if env_names_token_file 2>/dev/null && [ -s "$TOKEN_FILE" ]; then
  echo "API token (for the control plane): $TOKEN_FILE"
fi
