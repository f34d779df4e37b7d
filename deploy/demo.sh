#!/usr/bin/env bash
# Try warmstart on this node, from a fresh Debian 12 machine, in one command:
# installs what it needs (Docker engine, a local OCI registry, the project's
# npm dependencies), then prepares the bundled example workspace twice:
#   1. cold: an empty registry, nothing cached anywhere;
#   2. after wiping every image the first run built (a node that never saw the
#      repository): the finished image comes from the registry (an exact hit:
#      no build at all).
# and prints both times. Run as root (it installs packages and starts dockerd).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { printf '\n==> %s\n' "$*" >&2; }

if [ ! -d node_modules/@devcontainers/cli ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund >&2
fi
say "building the agent"
npm run --silent build >&2

say "bringing up the Docker engine, a local registry and a base image"
WARMSTART_TESTBED_SKIP_LXD=1 bash test/testbed/up.sh
# shellcheck disable=SC1091
. /var/lib/warmstart-testbed/env
PASSWORD=$(cat "$WARMSTART_TESTBED_REGISTRY_PASSWORD_FILE")

export WARMSTART_STATE_DIR=${WARMSTART_STATE_DIR:-/var/lib/warmstart-demo}
export WARMSTART_DEFAULT_IMAGE=$WARMSTART_TESTBED_BASE_IMAGE
export WARMSTART_CACHE_REGISTRY=$WARMSTART_TESTBED_REGISTRY/demo
warmstart() { node "$ROOT/dist/agent/src/cli/main.js" "$@"; }

say "making the bundled example a git repository"
REPO=/tmp/warmstart-demo/acme/example
rm -rf /tmp/warmstart-demo && mkdir -p "$(dirname "$REPO")"
cp -r test/fixtures/repos/example "$REPO"
git -C "$REPO" init -q -b main && git -C "$REPO" add -A
git -C "$REPO" -c user.email=demo@warmstart.invalid -c user.name=demo commit -qm "example project"
REF=$(warmstart cache ref "$REPO")
echo "cache ref: $REF" >&2

wipe_node() {
  for id in demo-cold demo-cached; do warmstart down "$id" --purge >/dev/null 2>&1 || true; done
  docker rmi -f "$REF" >/dev/null 2>&1 || true
  ids=$(docker image ls -aq --filter label=dev.warmstart.example=1 | sort -u)
  [ -z "$ids" ] || docker rmi -f $ids >/dev/null 2>&1 || true
}

say "starting from nothing: no local images of the example, no cache in the registry"
wipe_node
# Every tag of the example's cache repository goes (a manifest deleted by
# digest takes each tag that names it): the moving tags, the exact tags of
# earlier runs, their signatures.
repo_path=${REF#*/}; repo_path=${repo_path%:*}
REGISTRY=$WARMSTART_TESTBED_REGISTRY REPO_PATH=$repo_path USER_NAME=$WARMSTART_TESTBED_REGISTRY_USER PASSWORD=$PASSWORD node --input-type=module -e '
const { REGISTRY, REPO_PATH, USER_NAME, PASSWORD } = process.env;
const base = `http://${REGISTRY}/v2/${REPO_PATH}`;
const authorization = `Basic ${Buffer.from(`${USER_NAME}:${PASSWORD}`).toString("base64")}`;
const accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const list = await fetch(`${base}/tags/list`, { headers: { authorization } });
const tags = list.ok ? ((await list.json()).tags ?? []) : [];
for (const tag of tags) {
  const head = await fetch(`${base}/manifests/${tag}`, { method: "HEAD", headers: { authorization, accept } });
  const digest = head.headers.get("docker-content-digest");
  if (head.ok && digest) await fetch(`${base}/manifests/${digest}`, { method: "DELETE", headers: { authorization } });
}
'

say "1/2 cold start: builds the dev container, reports ready, then pushes the cache"
echo "$PASSWORD" | warmstart up "$REPO" --workspace-id demo-cold \
  --registry-username "$WARMSTART_TESTBED_REGISTRY_USER" --registry-password-stdin --json >/tmp/warmstart-demo/cold.json

say "wiping every image the cold start built: this engine is now a node that never saw the repository"
wipe_node

say "2/2 cached start on the 'fresh node': pulls the finished image (exact hit), builds nothing"
echo "$PASSWORD" | warmstart up "$REPO" --workspace-id demo-cached \
  --registry-username "$WARMSTART_TESTBED_REGISTRY_USER" --registry-password-stdin --json >/tmp/warmstart-demo/cached.json

node -e '
const fs = require("fs");
const cold = JSON.parse(fs.readFileSync("/tmp/warmstart-demo/cold.json", "utf8"));
const cached = JSON.parse(fs.readFileSync("/tmp/warmstart-demo/cached.json", "utf8"));
const s = (ms) => (ms / 1000).toFixed(1) + " s";
const row = (name, r) => console.log(
  name.padEnd(8), r.outcome.padEnd(8), s(r.timings.ready).padStart(8), s(r.timings.up ?? 0).padStart(8),
  r.cache.hit.padEnd(7), r.cache.stepsTotal === null ? "-".padEnd(6) : (String(r.cache.stepsCached) + "/" + String(r.cache.stepsTotal)).padEnd(6), "push:", r.push.status);
console.log("\nrun      outcome     ready  devcontainer-up  cache  steps cached");
row("cold", cold);
row("cached", cached);
console.log("\ncached start took " + (100 * cached.timings.ready / cold.timings.ready).toFixed(0) + "% of the cold start");
if (cold.outcome !== "ready" || cached.outcome !== "ready" || !["exact", "layers"].includes(cached.cache.hit)) process.exit(1);
'
echo
echo "The cached workspace is running: docker ps --filter label=warmstart.workspace=demo-cached"
echo "Remove it with: node dist/agent/src/cli/main.js down demo-cached --purge"
