import { existsSync } from 'node:fs';
import { readTestbedEnv } from '../../support/testbed.js';

/** The real LXD that test/testbed/lxd.sh brought up. */
export interface LxdTestbed {
  /** the daemon's unix socket */
  socket: string;
  /** alias of the busybox base image imported by the testbed */
  baseImage: string;
}

/**
 * Reads the LXD facts from the testbed env file. When the testbed could not
 * run LXD it wrote an empty socket and a reason: the LXD tests then fail with
 * that reason (they never skip silently).
 */
export function loadLxdTestbed(): LxdTestbed {
  const { dir, env: facts } = readTestbedEnv();
  const env = new Map(Object.entries(facts));
  const socket = env.get('WARMSTART_TESTBED_LXD_SOCKET');
  if (socket === undefined) throw new Error(`testbed env lacks WARMSTART_TESTBED_LXD_SOCKET: run 'bash test/testbed/up.sh'`);
  if (socket === '') {
    const why = env.get('WARMSTART_TESTBED_LXD_UNAVAILABLE') ?? 'unknown reason';
    throw new Error(`LXD is not available on this machine (${why}); see ${dir}/lxd.log and test/testbed/lxd.sh`);
  }
  if (!existsSync(socket)) throw new Error(`LXD socket ${socket} is gone: run 'bash test/testbed/up.sh' again`);
  const baseImage = env.get('WARMSTART_TESTBED_LXD_IMAGE');
  if (!baseImage) throw new Error('testbed env lacks WARMSTART_TESTBED_LXD_IMAGE');
  return { socket, baseImage };
}

/** A per-run prefix that is a valid instance name start: lowercase letter first, then letters and digits. */
export function lxdRunPrefix(tag: string): string {
  return `${tag}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}
