/**
 * execa, loaded on first use. Its import takes about 75 ms of the main
 * thread, which `warmstart up` would otherwise spend before its clone and
 * moving pull start, and again before `up`. So what a start runs (git, the
 * volume fill's tar, the devcontainers CLI, the builder probe) goes through
 * node:child_process, and execa serves the rest (`version`, the VM backends).
 */
let loading: Promise<typeof import('execa')> | null = null;

export function loadExeca(): Promise<typeof import('execa')> {
  return (loading ??= import('execa'));
}
