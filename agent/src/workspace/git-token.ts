import type { AgentConfig } from '../config/agent-config.js';
import { repositoryAuthority, type Repository } from './repository.js';

/** The token a job clones with, and whose it is. */
export interface GitTokenChoice {
  token: string | null;
  /**
   * `job`: brought by the job for its own repository; `github-app`: an
   * installation token the clone asks the App for (`token` is null until
   * then, agent/src/workspace/job.ts); `node`: WARMSTART_GIT_TOKEN; null: none
   */
  source: 'job' | 'github-app' | 'node' | null;
  /** host[:port] git may hand the token to (the repository's); null without a token or for ssh */
  host: string | null;
  /** why the node's token was held back, for the events */
  note: string | null;
}

/**
 * A job's own token serves its own repository. A GitHub App's clone token
 * (one repository, `contents: read`) serves https repositories on the App's
 * git hosts. The node's token serves only repositories on the hosts it was
 * configured for (WARMSTART_GIT_TOKEN_HOSTS, host[:port]): a job naming any
 * other host must not be able to collect it.
 */
export function chooseGitToken(
  repo: Repository,
  jobToken: string | null | undefined,
  config: Pick<AgentConfig, 'gitToken' | 'gitTokenHosts'> & { githubApp?: Pick<NonNullable<AgentConfig['githubApp']>, 'gitHosts'> | null },
): GitTokenChoice {
  const host = repositoryAuthority(repo);
  if (repo.kind === 'local') return { token: null, source: null, host: null, note: null };
  // An ssh repository's token is for https to the same host (inside the container).
  if (jobToken) return { token: jobToken, source: 'job', host: host ?? repo.host, note: null };
  if (repo.kind !== 'ssh' && host !== null && config.githubApp?.gitHosts.includes(host))
    return { token: null, source: 'github-app', host, note: null };
  if (!config.gitToken) return { token: null, source: null, host: null, note: null };
  if (host !== null && config.gitTokenHosts.includes(host)) return { token: config.gitToken, source: 'node', host, note: null };
  const where = host ?? `an ${repo.kind} repository`;
  return {
    token: null,
    source: null,
    host: null,
    note: `the node's git token is not used for ${where}: not in WARMSTART_GIT_TOKEN_HOSTS (${config.gitTokenHosts.join(', ') || 'empty'})`,
  };
}
