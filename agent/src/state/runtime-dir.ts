import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The runtime directory holds what is secret and short-lived: per-job dirs
 * (DOCKER_CONFIG with registry credentials, the override), the in-container
 * git credential, pending callbacks. Under systemd it is a tmpfs
 * (RuntimeDirectory=), so none of it reaches the disk; it is 0700.
 */
export async function ensureRuntimeDir(runtimeDir: string): Promise<void> {
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
  await chmod(runtimeDir, 0o700);
}

/** A fresh private dir for one job; removed when the job (push included) is over. */
export async function makeJobDir(runtimeDir: string): Promise<string> {
  await ensureRuntimeDir(runtimeDir);
  const jobs = join(runtimeDir, 'jobs');
  await mkdir(jobs, { recursive: true, mode: 0o700 });
  return mkdtemp(join(jobs, 'job-'));
}

/**
 * Removes job dirs left by an agent that died (kill -9, a push cut off at
 * shutdown): they may hold registry credentials. Only the daemon calls it,
 * at start-up, when none of its jobs can be running.
 */
export async function sweepJobDirs(runtimeDir: string): Promise<void> {
  await rm(join(runtimeDir, 'jobs'), { recursive: true, force: true });
}
