import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { faultRow, githubAppEnv, report, suiteSecrets, table } from '../support/faults.js';
import { agentInvariants } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';
import { expectedCacheRef, registryPath } from '../support/cache-ref.js';
import { notThisImage } from '../support/registry-images.js';

/**
 * Two jobs for the same repository and config at once (two workspace ids, one
 * registry namespace, the password-protected registry): both end ready, and
 * their pushes to the one cache ref never run at the same time (the agent's
 * push queue). A throttle in front of the registry keeps the first push going
 * while the second job gets ready, so the second push has to wait. Afterwards
 * the ref in the registry is a complete image: the one pushed last.
 */
const tb = loadTestbed();
const run = runId('fsame');
const namespace = `warmstart-test/${run}`;
const ids = [`${run}-a`, `${run}-b`];
let agent: Agent | undefined;
let proxy: ThrottleProxy | undefined;
/** the moving ref the two jobs share (set once the repository exists) */
let movingRef: string | undefined;

afterAll(async () => {
  if (agent && agent.process.exitCode === null) await agent.term().catch(() => undefined);
  await proxy?.close();
  await cleanUp({ runId: run, workspaceIds: ids, refs: movingRef ? [movingRef] : [] });
});

interface Ev {
  ts: string;
  type: string;
  status?: string;
  ms?: number;
  text?: string;
}
interface View {
  status: string;
  containerId: string;
  cache: { ref: string; hit: string; reason: string | null };
  push: { status: string; ref: string | null; reason: string | null; ms: number | null };
}

async function events(a: Agent, id: string): Promise<Ev[]> {
  return (await (await a.request(`/v1/workspaces/${id}/events`)).text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Ev);
}

async function settled(a: Agent, id: string): Promise<View> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const v = (await waitForStatus(a, id, ['ready', 'recovery', 'failed'], 180_000)) as unknown as View;
    if (v.push?.status !== 'pending') return v;
    if (Date.now() > deadline) throw new Error(`push of ${id} did not settle: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The registry's own answer for a tag: its manifest, and whether every blob it names is there. */
async function inRegistry(repository: string, tag: string): Promise<{ config: string; configBytes: Buffer; blobs: number; missing: string[] }> {
  const auth = `Basic ${Buffer.from(`${tb.registryUser}:${tb.registryPassword}`).toString('base64')}`;
  const base = `http://${tb.registry}/v2/${repository}`;
  const m = await fetch(`${base}/manifests/${tag}`, {
    headers: {
      authorization: auth,
      accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
    },
  });
  expect(m.status, `manifest ${repository}:${tag}`).toBe(200);
  const manifest = (await m.json()) as { config: { digest: string }; layers: { digest: string }[] };
  const digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  const missing: string[] = [];
  for (const d of digests) {
    const b = await fetch(`${base}/blobs/${d}`, { method: 'HEAD', headers: { authorization: auth } });
    if (b.status !== 200) missing.push(`${d} (${b.status})`);
  }
  const configBytes = Buffer.from(await (await fetch(`${base}/blobs/${manifest.config.digest}`, { headers: { authorization: auth } })).arrayBuffer());
  return { config: manifest.config.digest, configBytes, blobs: digests.length, missing };
}

describe('two jobs for the same repository and config at once', () => {
  it('both ready; one push per ref at a time; the ref is valid afterwards', async () => {
    await faultRow(
      {
        fault: 'two jobs for one repository/config at once (same cache ref, auth registry)',
        expected: 'both ready; their pushes of the ref never overlap; the ref in the registry is a complete image',
      },
      async () => {
        // A different 4 MB layer in each build; at 1 MB/s a push takes a few seconds.
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
            '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN head -c 4000000 /dev/urandom > /payload\n',
          },
          { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'same' },
        );
        proxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: 1_000_000, maxLifetimeMs: 280_000 });
        agent = await startAgent(await testEnv(tb.baseImage, { ...githubAppEnv(), WARMSTART_MAX_CONCURRENT_BUILDS: '2' }), {
          token: suiteSecrets().apiToken,
        });
        const cache = { registry: `${proxy.host}/${namespace}`, username: tb.registryUser, password: tb.registryPassword };
        const posted = await Promise.all(
          ids.map((id) =>
            agent!.request('/v1/workspaces', {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ id, repository: repo, cache }),
            }),
          ),
        );
        for (const r of posted) expect(r.status, await r.clone().text()).toBe(202);

        const views = await Promise.all(ids.map((id) => settled(agent!, id)));
        const ref = expectedCacheRef(`${proxy.host}/${namespace}`, repo);
        movingRef = ref;
        for (const v of views) {
          expect(v.status, JSON.stringify(v)).toBe('ready');
          expect(v.cache.ref).toBe(ref);
          expect(v.push.ref).toBe(ref);
          expect(['pushed', 'skipped']).toContain(v.push.status);
          if (v.push.status === 'skipped') expect(v.push.reason).toMatch(/superseded/);
        }
        expect(views.some((v) => v.push.status === 'pushed')).toBe(true);

        // When each job became ready and when each push ran, from the agent's own events.
        const timeline = await Promise.all(
          ids.map(async (id, i) => {
            const evs = await events(agent!, id);
            const ready = Date.parse(evs.find((e) => e.type === 'outcome')!.ts);
            const push = evs.find((e) => e.type === 'push')!;
            const end = Date.parse(push.ts);
            const ms = push.ms ?? 0;
            return { id, view: views[i]!, ready, start: end - ms, end, ms };
          }),
        );
        const pushed = timeline.filter((t) => t.view.push.status === 'pushed').sort((a, b) => a.start - b.start);
        let waited = 'no second push';
        if (pushed.length === 2) {
          const [first, second] = pushed as [(typeof pushed)[0], (typeof pushed)[0]];
          // The second job was ready while the first push ran: the queue had something to do.
          expect(second.ready, 'the second job was ready only after the first push ended: nothing was queued').toBeLessThan(first.end);
          // Event times carry a few ms of bookkeeping after each push; an overlap would be seconds.
          expect(second.start, 'the two pushes of one ref overlapped').toBeGreaterThanOrEqual(first.end - 100);
          waited = `push 2 waited ${second.start - Math.max(second.ready, first.start)} ms for push 1`;
        }

        // The ref names the image pushed last, and every blob of it is in the registry.
        const moving = await inRegistry(registryPath(ref), 'devcontainer-cache');
        expect(moving.missing).toEqual([]);
        const last = pushed.at(-1)!;
        const image = String((await execa('docker', ['inspect', '-f', '{{.Image}}', last.view.containerId])).stdout).trim();
        expect(await notThisImage(moving.configBytes, moving.config, image)).toBeNull();
        const images = await Promise.all(
          views.map(async (v) => String((await execa('docker', ['inspect', '-f', '{{.Image}}', v.containerId])).stdout).trim()),
        );

        report(
          'Two jobs, one cache ref: the push queue',
          table(
            ['workspace', 'ready at (ms)', 'push', 'push ran (ms from first ready)', 'image'],
            timeline.map((t) => {
              const t0 = Math.min(...timeline.map((x) => x.ready));
              return [
                t.id,
                String(t.ready - t0),
                `${t.view.push.status}${t.view.push.reason ? ` (${t.view.push.reason})` : ''}`,
                `${t.start - t0}..${t.end - t0}`,
                t.view.containerId ? images[timeline.indexOf(t)]!.slice(7, 19) : '-',
              ];
            }),
          ),
        );
        const inv = await agentInvariants(
          agent!,
          ids,
          ids.map((id) => `warmstart-ws-${id}`),
        );
        return (
          `both ${views.map((v) => v.status).join('/')}; pushes ${views.map((v) => v.push.status).join('/')} (${pushed.map((p) => `${p.ms} ms`).join(', ')}), never overlapping, ${waited}; ` +
          `images ${images[0] === images[1] ? 'identical' : 'different'}; ref = the last pushed image, ${moving.blobs} blobs all present; ${inv}`
        );
      },
    );
  });
});
