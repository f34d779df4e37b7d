import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileOutbox, type FileOutboxOptions } from '../../../agent/src/callbacks/file-outbox.js';
import type { CallbackRequest } from '../../../agent/src/callbacks/outbox.js';
import { captureLogger, sleep, startControlPlane, type ControlPlane, type Received } from './control-plane.js';

const TOKEN = 'cp-callback-token-7f3a9c1e5b';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let dir: string;
let log: ReturnType<typeof captureLogger>;
const cleanup: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'warmstart-outbox-')), 'callbacks');
  log = captureLogger();
});

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  // Whatever happened, the token was never logged.
  expect(log.text()).not.toContain(TOKEN);
  await rm(join(dir, '..'), { recursive: true, force: true });
});

async function plane(script: ControlPlane['script']): Promise<ControlPlane> {
  const p = await startControlPlane(script);
  cleanup.push(() => p.close());
  return p;
}

function outbox(options: Partial<FileOutboxOptions> = {}): FileOutbox {
  const o = new FileOutbox({ dir, logger: log, baseDelayMs: 20, random: () => 1, ...options });
  cleanup.push(() => o.stop());
  return o;
}

/** Real timers that remember every retry delay they were asked for. */
function recordingTimers(): Pick<FileOutboxOptions, 'setTimer' | 'clearTimer'> & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    setTimer: (fn, ms) => {
      delays.push(ms);
      return setTimeout(fn, ms);
    },
    clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
  };
}

function callback(p: ControlPlane, workspaceId = 'ws-1', n = 1): CallbackRequest {
  return {
    url: `${p.url}/workspaces/${workspaceId}/ready`,
    token: TOKEN,
    body: { workspaceId, status: 'ready', n },
    kind: 'ready',
    workspaceId,
  };
}

const key = (r: Received): string | undefined => r.headers['idempotency-key'] as string | undefined;
const tag = (r: Received): string => {
  const b = JSON.parse(r.body) as { workspaceId: string; n: number };
  return `${b.workspaceId}#${b.n}`;
};

describe('FileOutbox', () => {
  it('retries 503 with growing delays, then delivers once with stable headers and deletes the file', async () => {
    const cp = await plane((_r, i) => (i < 2 ? { status: 503 } : { status: 200 }));
    const timers = recordingTimers();
    const attempts: string[] = [];
    const o = outbox({ baseDelayMs: 100, ...timers, onAttempt: (outcome) => void attempts.push(outcome) });
    await o.start();
    await o.enqueue(callback(cp));
    expect(o.pending()).toBe(1);

    expect(await o.flush(2500)).toBe(true);
    expect(cp.requests).toHaveLength(3);
    for (const r of cp.requests) {
      expect(r.method).toBe('POST');
      expect(r.path).toBe('/workspaces/ws-1/ready');
      expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual({ workspaceId: 'ws-1', status: 'ready', n: 1 });
    }
    expect(key(cp.requests[0]!)).toMatch(UUID);
    expect(new Set(cp.requests.map(key)).size).toBe(1);
    expect(timers.delays).toEqual([100, 200]);
    expect(cp.requests[1]!.at - cp.requests[0]!.at).toBeGreaterThanOrEqual(90);
    expect(cp.requests[2]!.at - cp.requests[1]!.at).toBeGreaterThanOrEqual(190);
    expect(await readdir(dir)).toEqual([]);
    expect(o.pending()).toBe(0);
    // what /metrics counts (warmstart_callback_attempts_total)
    expect(attempts).toEqual(['retry', 'retry', 'delivered']);
  });

  it('does not retry a 400: one request, file deleted, a warning with the status', async () => {
    const cp = await plane(() => ({ status: 400, body: '{"code":"BAD"}' }));
    const o = outbox();
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(2000)).toBe(true);
    await sleep(150);
    expect(cp.requests).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
    expect(log.lines.find((l) => l.level === 'warn')?.obj).toMatchObject({ status: 400, workspaceId: 'ws-1' });
  });

  it('honours Retry-After on 429', async () => {
    const cp = await plane((_r, i) => (i === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 204 }));
    const timers = recordingTimers();
    const o = outbox({ baseDelayMs: 10, ...timers });
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(2500)).toBe(true);
    expect(cp.requests).toHaveLength(2);
    expect(timers.delays).toEqual([1000]);
    expect(cp.requests[1]!.at - cp.requests[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('retries an attempt that got no answer within the request timeout', async () => {
    const cp = await plane((_r, i) => (i === 0 ? 'hang' : { status: 200 }));
    const o = outbox({ requestTimeoutMs: 200 });
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(2000)).toBe(true);
    expect(cp.requests).toHaveLength(2);
    expect(log.lines.some((l) => (l.obj as { error?: string }).error === 'no answer within 200 ms')).toBe(true);
  });

  it('retries after the connection was closed without an answer', async () => {
    const cp = await plane((_r, i) => (i === 0 ? 'destroy' : { status: 200 }));
    const o = outbox();
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(2000)).toBe(true);
    expect(cp.requests).toHaveLength(2);
    expect(new Set(cp.requests.map(key)).size).toBe(1);
    expect(log.lines.some((l) => l.level === 'warn' && (l.obj as { error?: string }).error?.includes('fetch failed'))).toBe(true);
  });

  it('keeps a pending callback across a crash and delivers it after a restart, with its attempt count', async () => {
    const cp = await plane((_r, i) => (i < 2 ? { status: 503 } : { status: 200 }));
    // A retry far off: nothing can be sent again before the stop below, however slow the machine.
    const first = outbox({ baseDelayMs: 60_000 });
    await first.start();
    await first.enqueue(callback(cp));
    await cp.waitFor(1);
    const [file] = await readdir(dir);
    expect(file).toMatch(/^\d{16}-[0-9a-f-]{36}\.json$/);
    await vi.waitFor(async () => expect(JSON.parse(await readFile(join(dir, file!), 'utf8')).attempts).toBe(1));
    await first.stop();
    await sleep(200); // its retry timer is gone: nothing more is sent
    expect(cp.requests).toHaveLength(1);
    expect(first.pending()).toBe(1);
    expect((await stat(join(dir, file!))).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    const timers = recordingTimers();
    const second = outbox({ baseDelayMs: 50, ...timers });
    await second.start();
    expect(second.pending()).toBe(1);
    expect(await second.flush(2000)).toBe(true);
    expect(cp.requests).toHaveLength(3);
    expect(new Set(cp.requests.map(key)).size).toBe(1);
    expect(timers.delays).toEqual([100]); // second failure overall: base * 2^1
    expect(await readdir(dir)).toEqual([]);
  });

  it('delivers one workspace in order while another is not held up', async () => {
    const seen = new Set<string>();
    const cp = await plane((r) => {
      const t = tag(r);
      if (t === 'ws-a#1' && !seen.has(t)) {
        seen.add(t);
        return { status: 503 };
      }
      return { status: 200 };
    });
    const o = outbox({ baseDelayMs: 200 });
    await o.start();
    await o.enqueue(callback(cp, 'ws-a', 1));
    await o.enqueue(callback(cp, 'ws-a', 2));
    await o.enqueue(callback(cp, 'ws-b', 1));
    expect(await o.flush(2500)).toBe(true);
    const tags = cp.requests.map(tag);
    expect(tags.filter((t) => t.startsWith('ws-a'))).toEqual(['ws-a#1', 'ws-a#1', 'ws-a#2']);
    expect(tags.indexOf('ws-b#1')).toBeLessThan(tags.lastIndexOf('ws-a#1'));
  });

  it('restores enqueue order after a restart, even with the clock set back', async () => {
    const cp = await plane(() => ({ status: 200 }));
    const before = outbox();
    for (const n of [1, 2, 3]) await before.enqueue(callback(cp, 'ws-a', n));
    expect(cp.requests).toHaveLength(0); // never started: nothing sent
    await before.stop();
    const after = outbox({ now: () => 5 });
    await after.enqueue(callback(cp, 'ws-a', 4));
    await after.start();
    expect(await after.flush(2000)).toBe(true);
    expect(cp.requests.map(tag)).toEqual(['ws-a#1', 'ws-a#2', 'ws-a#3', 'ws-a#4']);
  });

  it('gives up after maxAttempts', async () => {
    const cp = await plane(() => ({ status: 502 }));
    const o = outbox({ maxAttempts: 2 });
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(2000)).toBe(true);
    await sleep(100);
    expect(cp.requests).toHaveLength(2);
    expect(await readdir(dir)).toEqual([]);
    expect(log.lines.at(-1)).toMatchObject({ level: 'warn', msg: 'callback still not accepted; giving up' });
  });

  it('gives up once a callback is older than maxAgeMs', async () => {
    let clock = 1_000;
    const cp = await plane(() => {
      clock += 25 * 3600_000;
      return { status: 500 };
    });
    const o = outbox({ now: () => clock });
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(2000)).toBe(true);
    expect(cp.requests).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it('flush reports false when the time runs out; the file stays', async () => {
    const cp = await plane(() => ({ status: 503 }));
    const o = outbox({ baseDelayMs: 5_000 });
    await o.start();
    await o.enqueue(callback(cp));
    expect(await o.flush(300)).toBe(false);
    expect(o.pending()).toBe(1);
    expect(await readdir(dir)).toHaveLength(1);
  });

  it('moves an unreadable file aside without logging its content', async () => {
    const o = outbox();
    await o.start(); // makes the dir
    await o.stop();
    const name = `${'1'.padStart(16, '0')}-00000000-0000-4000-8000-000000000000.json`;
    await writeFile(join(dir, name), `{"token": "${TOKEN}", broken`);
    const again = outbox();
    await again.start();
    expect(again.pending()).toBe(0);
    expect(await readdir(dir)).toEqual([`${name}.unreadable`]);
    expect(log.lines.some((l) => l.msg.includes('unreadable'))).toBe(true);
  });

  it('refuses a callback URL that is not http(s)', async () => {
    const o = outbox();
    await expect(o.enqueue({ ...callback({ url: 'x' } as ControlPlane), url: 'file:///etc/passwd' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});
