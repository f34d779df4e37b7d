import { hostname, tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultNodeId, startHeartbeat, type Heartbeat } from '../../../agent/src/callbacks/heartbeat.js';
import { HeartbeatBody } from '../../../shared/src/api.js';
import { freePort } from '../../support/ports.js';
import { captureLogger, sleep, startControlPlane } from './control-plane.js';

const TOKEN = 'heartbeat-token-4b2d8e';
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function beat(url: string, log = captureLogger(), intervalMs = 100, diskPath = tmpdir()): Heartbeat {
  const hb = startHeartbeat({
    url: `${url}/`,
    nodeId: 'node-1',
    token: TOKEN,
    intervalMs,
    version: '1.2.3',
    stats: () => ({ activeWorkspaces: ['ws-1', 'ws-2'], queued: 3 }),
    diskPath,
    logger: log,
  });
  cleanup.push(() => hb.stop());
  return hb;
}

describe('heartbeat', () => {
  it('sends a valid HeartbeatBody right away and then every interval; none after stop', async () => {
    // Right away: with an hour between beats, the first one still comes.
    const early = await startControlPlane(() => ({ status: 204 }));
    cleanup.push(() => early.close());
    const slow = beat(early.url, captureLogger(), 3_600_000);
    await early.waitFor(1, 5_000);
    slow.stop();
    expect(early.requests).toHaveLength(1);

    const cp = await startControlPlane(() => ({ status: 204 }));
    cleanup.push(() => cp.close());
    const hb = beat(cp.url);
    await cp.waitFor(1);
    await cp.waitFor(2);
    hb.stop();
    await sleep(250);
    expect(cp.requests).toHaveLength(2);

    const [r] = cp.requests;
    expect(r!.method).toBe('POST');
    expect(r!.path).toBe('/nodes/node-1/heartbeat');
    expect(r!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(r!.headers['content-type']).toBe('application/json');
    const body = HeartbeatBody.parse(JSON.parse(r!.body));
    expect(body).toMatchObject({ nodeId: 'node-1', version: '1.2.3', activeWorkspaces: ['ws-1', 'ws-2'], queuedJobs: 3 });
    expect(body.load).toHaveLength(3);
    expect(body.memory.totalBytes).toBeGreaterThan(0);
    expect(body.memory.agentRssBytes).toBeGreaterThan(0);
    expect(body.disk).toMatchObject({ path: tmpdir() });
    expect(body.disk.totalBytes).toBeGreaterThan(0);
  });

  it('a disk path it cannot read is sent as zeros with the reason, and logged; the beat still goes', async () => {
    const cp = await startControlPlane(() => ({ status: 204 }));
    cleanup.push(() => cp.close());
    const log = captureLogger();
    const hb = beat(cp.url, log, 3_600_000, '/nonexistent/warmstart-state');
    await cp.waitFor(1, 5_000);
    hb.stop();
    const body = HeartbeatBody.parse(JSON.parse(cp.requests[0]!.body));
    expect(body.disk).toMatchObject({ path: '/nonexistent/warmstart-state', totalBytes: 0, freeBytes: 0 });
    expect(body.disk.error).toMatch(/ENOENT/);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg === 'heartbeat: disk usage unknown')).toBe(true);
  });

  it('survives a control plane that is down and beats again once it is back', async () => {
    const port = await freePort();
    const log = captureLogger();
    beat(`http://127.0.0.1:${port}`, log);
    await sleep(350);
    expect(log.lines.filter((l) => l.level === 'warn').length).toBeGreaterThanOrEqual(2);
    expect(log.text()).not.toContain(TOKEN);

    const cp = await startControlPlane(() => ({ status: 200 }), port);
    cleanup.push(() => cp.close());
    await cp.waitFor(1, 1000);
    expect(HeartbeatBody.parse(JSON.parse(cp.requests[0]!.body)).nodeId).toBe('node-1');
    await sleep(50);
    expect(log.lines.some((l) => l.msg === 'heartbeat delivered again')).toBe(true);
  });

  it('logs a refused beat and keeps going', async () => {
    const cp = await startControlPlane((_r, i) => (i === 0 ? { status: 401 } : { status: 200 }));
    cleanup.push(() => cp.close());
    const log = captureLogger();
    beat(cp.url, log);
    await cp.waitFor(2);
    expect(log.lines[0]).toMatchObject({ level: 'warn', obj: { status: 401 } });
  });

  it('defaultNodeId: WARMSTART_NODE_ID, else the host name', () => {
    expect(defaultNodeId({ WARMSTART_NODE_ID: 'n-7' })).toBe('n-7');
    expect(defaultNodeId({})).toBe(hostname());
  });
});
