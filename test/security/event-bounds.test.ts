/**
 * Attack 7b: a build that prints without end. A repository whose build
 * prints ~36,000 lines (three RUN steps, each under BuildKit's own 2 MiB
 * step log limit) and one 100,000-character line, then waits a few seconds.
 * The running job's history, read by a follower that joins after the flood
 * (GET /v1/workspaces/:id/events), holds at most MAX_HISTORY_LOG_LINES log
 * lines and a marker; events.ndjson ends under MAX_EVENT_LOG_BYTES with a
 * marker and every phase event; no event text is over the line cap; the
 * workspace ends ready; /metrics counts the cut and dropped lines.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EVENT_LOG_BYTES, MAX_EVENT_TEXT_CHARS, MAX_HISTORY_LOG_LINES, markerCount } from '../../agent/src/events/event-bounds.js';
import type { WorkspaceEvent } from '../../agent/src/events/events.js';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { phaseOf, textOf } from '../support/events.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { until } from '../support/wait.js';

const tb = loadTestbed();
const run = runId('evb');
const id = `${run}-ws`;
const LINES_PER_STEP = 12_000;
const flood = (step: string): string => `RUN awk 'BEGIN{for(i=0;i<${LINES_PER_STEP};i++) printf "flood-${step} %06d ${'x'.repeat(70)}\\n", i}'`;

let agent: Agent;
let repo: string;

beforeAll(async () => {
  repo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
      '.devcontainer/Dockerfile': [
        'FROM @@BASE_IMAGE@@',
        'LABEL warmstart.test-run=@@RUN_ID@@',
        // The run id keeps the steps out of the layer cache: they print every time.
        'RUN echo @@RUN_ID@@ > /run-id',
        flood('a'),
        flood('b'),
        flood('c'),
        "RUN head -c 100000 /dev/zero | tr '\\0' L; echo",
        'RUN echo FLOOD-DONE && sleep 8',
        '',
      ].join('\n'),
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'flood' },
  );
  agent = await startAgent(await testEnv(tb.baseImage));
});

afterAll(async () => {
  await agent?.term();
  await cleanUp({ runId: run, workspaceIds: [id] });
});

async function metric(action: string): Promise<number> {
  const text = await (await agent.request('/metrics')).text();
  const m = new RegExp(`^warmstart_event_lines_total\\{action="${action}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const logPath = (): string => join(agent.env.WARMSTART_STATE_DIR!, 'workspaces', id, 'events.ndjson');

describe('attack 7b: a build that prints without end', () => {
  it('keeps the in-memory history, the line length and events.ndjson under their caps, with markers and metrics', async () => {
    const post = await agent.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, repository: repo }),
    });
    expect(post.status, await post.clone().text()).toBe(202);

    // Join after the flood, while the last step still sleeps: the follower gets the history as kept.
    await until('the flood to be over', async () => (await readFile(logPath(), 'utf8').catch(() => '')).includes('FLOOD-DONE'), 240_000, 200);
    const stream = await agent.request(`/v1/workspaces/${id}/events`);
    expect(stream.status).toBe(200);
    const followed = (await stream.text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as WorkspaceEvent);
    const followedLogs = followed.filter((e) => e.type === 'log').length;
    const historyMarkers = followed.filter((e) => markerCount(e) !== null);

    const view = await waitForStatus(agent, id, ['ready', 'recovery', 'failed'], 120_000);
    expect(view.status).toBe('ready');
    // Lines after the flood (container start) come live; the flood itself was trimmed to the cap.
    expect(followedLogs).toBeLessThanOrEqual(MAX_HISTORY_LOG_LINES + 200);
    expect(historyMarkers).toHaveLength(1);
    expect(markerCount(historyMarkers[0]!)).toBeGreaterThan(3 * LINES_PER_STEP - MAX_HISTORY_LOG_LINES - 1);
    expect(followed.some((e) => e.type === 'outcome')).toBe(true);

    const size = (await stat(logPath())).size;
    expect(size).toBeLessThanOrEqual(MAX_EVENT_LOG_BYTES);
    const onDisk = (await readFile(logPath(), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as WorkspaceEvent);
    const fileMarkers = onDisk.filter((e) => markerCount(e) !== null);
    expect(fileMarkers).toHaveLength(1);
    // The numbers (seq) survive the trims and the history's drops: strictly increasing on disk and as followed.
    for (const events of [onDisk, followed]) {
      const seqs = events.map((e) => e.seq);
      expect(seqs.every((s, i) => Number.isInteger(s) && (i === 0 || s! > seqs[i - 1]!))).toBe(true);
    }
    const phases = (type: string): string[] => onDisk.filter((e) => e.type === type).map((e) => phaseOf(e) ?? '');
    // Every phase that started ended (phases overlap, so not in the same order).
    expect(phases('phase-end').sort()).toEqual(phases('phase-start').sort());
    expect(phases('phase-start').length).toBeGreaterThan(2);
    expect(onDisk.some((e) => e.type === 'outcome' && e.status === 'ready')).toBe(true);
    expect(onDisk.some((e) => textOf(e)?.includes('FLOOD-DONE'))).toBe(true);
    const longest = Math.max(...[...onDisk, ...followed].map((e) => textOf(e)?.length ?? 0));
    expect(longest).toBeLessThan(MAX_EVENT_TEXT_CHARS + 100);

    const counted = { cut: await metric('cut'), history: await metric('dropped-history'), file: await metric('dropped-file') };
    // The 100,000-character line reaches the agent in chunks of the CLI's output (docker and the CLI split
    // it at 4 or 8 KiB, depending on how fast each side reads): a chunk over the cap is cut and marked, and
    // every cut is counted (those on disk, and at most the lines the file dropped besides).
    const cutsOnDisk = onDisk.filter((e) => /\[warmstart: line cut, \d+ more characters dropped\]$/.test(textOf(e) ?? '')).length;
    expect(onDisk.some((e) => textOf(e)?.startsWith('LLLL'))).toBe(true);
    expect(counted.cut).toBeGreaterThanOrEqual(cutsOnDisk);
    expect(counted.cut).toBeLessThanOrEqual(cutsOnDisk + counted.file);
    expect(counted.history).toBeGreaterThanOrEqual(3 * LINES_PER_STEP - MAX_HISTORY_LOG_LINES);
    expect(counted.file).toBe(markerCount(fileMarkers[0]!));
    console.log(
      `event bounds: followed ${followedLogs} log lines (history marker: ${markerCount(historyMarkers[0]!)} dropped); ` +
        `events.ndjson ${size} bytes, ${onDisk.length} events (marker: ${markerCount(fileMarkers[0]!)} dropped); longest text ${longest}; metrics ${JSON.stringify(counted)}`,
    );
  });
});
