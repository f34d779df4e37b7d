import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Agent } from './serve.js';

/**
 * Memory of a running `warmstart serve`. RSS is what the operator sees, but
 * V8 keeps garbage in the old generation until it decides on a full
 * collection, so RSS alone rises for a while on any busy Node process. What
 * shows a leak is the live heap after a full collection: a heap snapshot
 * forces one, so the agent is started with a snapshot signal and a diagnostic
 * dir outside the suite dir (a snapshot holds the process's secrets), and the
 * snapshot is deleted as soon as it is written.
 */
export async function memoryProbeEnv(): Promise<Record<string, string>> {
  const dir = await mkdtemp(join('/var/tmp', 'warmstart-heap-'));
  return { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`, WARMSTART_TEST_HEAP_DIR: dir };
}

export async function rssMb(agent: Agent): Promise<number> {
  const status = await readFile(`/proc/${agent.process.pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024);
}

/** The agent's heap in use right after a full collection, in MB (the agent must run with memoryProbeEnv()). */
export async function liveHeapMb(agent: Agent): Promise<number> {
  const dir = agent.env.WARMSTART_TEST_HEAP_DIR;
  if (!dir) throw new Error('start the agent with memoryProbeEnv() to measure its live heap');
  const before = new Set(await readdir(dir));
  process.kill(agent.process.pid!, 'SIGUSR2');
  // The snapshot is written on the agent's main thread: once a new file is
  // there and the agent answers again, it is complete.
  const deadline = Date.now() + 60_000;
  let snapshot: string | undefined;
  while (!snapshot) {
    if (Date.now() > deadline) throw new Error('no heap snapshot appeared');
    await new Promise((r) => setTimeout(r, 200));
    snapshot = (await readdir(dir)).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
  }
  const metrics = await (await agent.request('/metrics')).text();
  await rm(join(dir, snapshot), { force: true });
  const used = Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(metrics)?.[1]);
  if (!Number.isFinite(used)) throw new Error('no nodejs_heap_size_used_bytes in /metrics');
  return Math.round(used / 1e5) / 10;
}

/** Removes the agent's diagnostic dir. */
export async function dropMemoryProbe(agent: Agent): Promise<void> {
  const dir = agent.env.WARMSTART_TEST_HEAP_DIR;
  if (dir) await rm(dir, { recursive: true, force: true });
}
