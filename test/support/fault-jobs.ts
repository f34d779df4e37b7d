import { execa } from 'execa';
import { expect } from 'vitest';
import { testEnv } from './cli.js';
import { cleanUp, containersWithLabel } from './docker.js';
import { githubAppEnv, suiteSecrets } from './faults.js';
import { makeRepo, runId } from './repos.js';
import { startAgent, waitForStatus, type Agent } from './serve.js';
import type { Testbed } from './testbed.js';

/**
 * What the fault suite's job rows share: a suite agent (the suite's API token,
 * its GitHub App key), jobs submitted over the API and followed until their
 * push has settled, the observed values in one line for the matrix, and the
 * clean-up of everything a file made.
 */

export interface View {
  id: string;
  status: string;
  profile: string | null;
  containerId: string | null;
  cache: { ref: string | null; hit: string; reason: string | null; stepsCached: number | null; stepsTotal: number | null } | null;
  push: { status: string; ref: string | null; reason: string | null; ms: number | null } | null;
  timings: Record<string, number>;
  error: { code: string; message: string; detail?: string } | null;
}

export interface WorkspaceEvent {
  type: string;
  phase?: string;
  status?: string;
  text?: string;
  ms?: number;
}

/**
 * A `warmstart serve` as the suite runs them: fresh state, the suite's API
 * token, GitHub App key and a node-wide git token bound to github.com, which
 * no job of the suite clones from.
 */
export async function startSuiteAgent(tb: Testbed, env: Record<string, string> = {}): Promise<Agent> {
  const node = { WARMSTART_GIT_TOKEN: suiteSecrets().nodeGitToken, WARMSTART_GIT_TOKEN_HOSTS: 'github.com' };
  return startAgent(await testEnv(tb.baseImage, { ...githubAppEnv(), ...node, ...env }), { token: suiteSecrets().apiToken });
}

/** POST /v1/workspaces; the agent must take the job (202). */
export async function submit(agent: Agent, body: Record<string, unknown>): Promise<void> {
  const r = await agent.request('/v1/workspaces', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(r.status, await r.clone().text()).toBe(202);
}

/** Waits until the job has an outcome and its push is no longer pending. */
export async function settled(agent: Agent, id: string, timeoutMs = 180_000): Promise<View> {
  const deadline = Date.now() + timeoutMs;
  let view = (await waitForStatus(agent, id, ['ready', 'recovery', 'failed'], timeoutMs)) as unknown as View;
  while (view.push?.status === 'pending') {
    if (Date.now() > deadline) throw new Error(`push of ${id} did not settle: ${JSON.stringify(view)}`);
    await new Promise((r) => setTimeout(r, 250));
    view = (await (await agent.request(`/v1/workspaces/${id}`)).json()) as View;
  }
  return view;
}

/** The job's event log (the stream ends once the job has), without the keepalive lines of a quiet stream. */
export async function eventsOf(agent: Agent, id: string): Promise<WorkspaceEvent[]> {
  const r = await agent.request(`/v1/workspaces/${id}/events`);
  expect(r.status).toBe(200);
  return (await r.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as WorkspaceEvent | { type: 'keepalive' })
    .filter((e): e is WorkspaceEvent => e.type !== 'keepalive');
}

/** DELETE ?purge=true: containers, volume and record go. */
export async function purge(agent: Agent, id: string): Promise<void> {
  const r = await agent.request(`/v1/workspaces/${id}?purge=true`, { method: 'DELETE' });
  expect(r.status, await r.clone().text()).toBe(200);
}

/** The stable code at the start of a reason ("push permission probe: REGISTRY_UNREACHABLE: ..." → REGISTRY_UNREACHABLE). */
export function codeOf(reason: string | null | undefined): string {
  const code = /\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b/.exec(reason ?? '')?.[1];
  if (code) return code;
  if (!reason) return '-';
  return reason.length > 60 ? `${reason.slice(0, 59)}…` : reason;
}

/** One line of what a view says, for the matrix: status/profile, error, cache, push. */
export function describeView(v: View): string {
  const parts = [`${v.status}/${v.profile ?? '-'}`];
  if (v.error) parts.push(`error ${v.error.code}`);
  if (v.cache) parts.push(`cache ${v.cache.hit}${v.cache.reason ? ` (${codeOf(v.cache.reason)})` : ''}`);
  if (v.push) {
    const ms = v.push.ms !== null && v.push.status !== 'skipped' ? ` in ${v.push.ms} ms` : '';
    parts.push(`push ${v.push.status}${v.push.reason ? ` (${codeOf(v.push.reason)})` : ''}${ms}`);
  }
  return parts.join(', ');
}

/** One scenario: its own run id (fixtures label their images with it), registry namespace and repository. */
export interface Scenario {
  run: string;
  namespace: string;
  repo: string;
  /** workspace ids to clean up */
  ids: string[];
  refs: string[];
}

export async function scenario(
  tb: Testbed,
  prefix: string,
  source: string | Record<string, string>,
  o: { owner?: string; name?: string } = {},
): Promise<Scenario> {
  const run = runId(prefix);
  return {
    run,
    namespace: `warmstart-test/${run}`,
    repo: await makeRepo(source, { runId: run, baseImage: tb.baseImage, owner: o.owner ?? 'acme', name: o.name ?? 'app' }),
    ids: [],
    refs: [],
  };
}

/**
 * Removes every container, volume and image of the scenarios, including
 * build containers their fixtures' label marks. Temp dirs stay: the suite's
 * teardown removes them after the secret audit.
 */
export async function cleanUpScenarios(scenarios: Scenario[]): Promise<void> {
  for (const s of scenarios) {
    await cleanUp({ runId: s.run, workspaceIds: s.ids, refs: s.refs });
    const left = await containersWithLabel(`warmstart.test-run=${s.run}`);
    if (left.length) await execa('docker', ['rm', '-f', ...left], { reject: false });
    await cleanUp({ runId: s.run });
  }
}
