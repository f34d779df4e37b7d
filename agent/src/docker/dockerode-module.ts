import { createRequire, Module } from 'node:module';
import type DockerType from 'dockerode';

/**
 * dockerode, loaded without its BuildKit session support until something
 * uses it. dockerode requires `lib/session.js` when it loads, and with it
 * gRPC and a protobuf loader: about half of its loading time, on the way of
 * every start's first engine call (the moving pull). The agent never asks
 * dockerode for a BuildKit build (the devcontainers CLI builds; the agent's
 * own `labelImage` build is a classic one), so the module is put into
 * require's cache as a stand-in that loads the real one on its first call
 * and hands the call on. If dockerode's layout ever changes, nothing is
 * stubbed and dockerode loads as it always did.
 */
const require = createRequire(import.meta.url);

function deferSessionModule(): void {
  let file: string;
  try {
    file = require.resolve('dockerode/lib/session.js');
  } catch {
    return; // a dockerode without that module: nothing to defer, it loads as it is
  }
  if (require.cache[file]) return;
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  standIn.exports = function withSessionWhenUsed(this: unknown, ...args: unknown[]): unknown {
    delete require.cache[file];
    const real = require(file) as (...a: unknown[]) => unknown;
    return real.apply(this, args);
  };
  require.cache[file] = standIn;
}

deferSessionModule();

const Docker = require('dockerode') as typeof DockerType;
export default Docker;
