/**
 * execa, loaded on first use. Its import takes about 75 ms, which
 * `warmstart up` would otherwise spend before its clone and moving pull start;
 * the clone runs git through node:child_process (agent/src/git/git-cli.ts),
 * so nothing needs execa until the devcontainers CLI runs.
 */
let loading: Promise<typeof import('execa')> | null = null;

export function loadExeca(): Promise<typeof import('execa')> {
  return (loading ??= import('execa'));
}
