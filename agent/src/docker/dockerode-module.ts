import { createRequire, Module } from 'node:module';
import type DockerType from 'dockerode';

/**
 * dockerode, loaded without the parts the agent never uses until something
 * does:
 *
 * - `dockerode/lib/session.js`, BuildKit session support, with gRPC and a
 *   protobuf loader: about half of dockerode's loading time, on the way of
 *   every start's first engine call (the moving pull). The agent never asks
 *   dockerode for a BuildKit build (the devcontainers CLI builds; the agent's
 *   own `labelImage` build is a classic one).
 * - `docker-modem/lib/ssh.js`, which loads ssh2 for `DOCKER_HOST=ssh://`:
 *   ssh2 compiles a WebAssembly module with 16 MB of memory and loads a
 *   native addon, about 12 MB of a daemon's idle RSS (test/bench/README.md
 *   "Where serve's memory goes"). A unix socket or TCP engine never calls it.
 *
 * Each is put into require's cache as a stand-in that loads the real module
 * on its first call and hands the call on. If dockerode's layout ever
 * changes, nothing is stubbed and dockerode loads as it always did.
 */
const require = createRequire(import.meta.url);

/** The module `resolve()` names (one whose export is one function) loads on its first call, once. */
function deferModule(resolve: () => string): void {
  let file: string;
  try {
    file = resolve();
  } catch {
    return; // a dockerode without that module: nothing to defer, it loads as it is
  }
  if (require.cache[file]) return;
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  let real: ((...a: unknown[]) => unknown) | null = null;
  standIn.exports = function loadedWhenUsed(this: unknown, ...args: unknown[]): unknown {
    if (real === null) {
      delete require.cache[file];
      real = require(file) as (...a: unknown[]) => unknown;
    }
    return real.apply(this, args);
  };
  require.cache[file] = standIn;
}

deferModule(() => require.resolve('dockerode/lib/session.js'));
// docker-modem is dockerode's own dependency: resolved from dockerode's directory.
deferModule(() => createRequire(require.resolve('dockerode')).resolve('docker-modem/lib/ssh.js'));

const Docker = require('dockerode') as typeof DockerType;
export default Docker;
