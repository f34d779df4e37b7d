import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../support/cli.js';
import { freePort } from '../../support/ports.js';
import { startAgent, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';

/**
 * `serve` under systemd's Type=notify (issue 16, "the unit reaches `active`
 * only once the API answers"): the agent's messages go to a real AF_UNIX
 * datagram socket, as systemd's $NOTIFY_SOCKET, through the node's real
 * systemd-notify(1). The socket is held by a few lines of python3 (Node
 * cannot bind a datagram socket), which print each message with the
 * sender's credentials as the kernel gives them (SO_PASSCRED), as systemd
 * reads them. The unit under the real systemd is in test/release.
 */
const tb = loadTestbed();
const dirs: string[] = [];
const agents: Agent[] = [];
const receivers: ChildProcess[] = [];

const RECEIVER = String.raw`
import json, os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": path}), flush=True)
while True:
    data, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    print(json.dumps({"pid": pid, "fields": data.decode().split("\n")}), flush=True)
`;

interface Message {
  pid: number | null;
  fields: string[];
  /** for READY=1: whether /health answered when it arrived */
  healthAtArrival?: number | string;
}

/** Starts the socket holder; resolves once it is bound, with the messages as they come. */
async function notifySocket(): Promise<{ path: string; messages: Message[]; onMessage: (f: (m: Message) => Promise<void>) => void }> {
  const dir = await mkdtemp(join(tmpdir(), 'warmstart-notify-'));
  dirs.push(dir);
  const path = join(dir, 'notify.sock');
  const proc = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  receivers.push(proc);
  const messages: Message[] = [];
  let hook: ((m: Message) => Promise<void>) | null = null;
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('exit', (code) => reject(new Error(`notify socket holder exited ${code}`)));
    proc.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as Message & { listening?: string };
        buffered = buffered.slice(nl + 1);
        if (line.listening) resolve();
        else {
          messages.push(line);
          if (hook) void hook(line);
        }
      }
    });
  });
  return { path, messages, onMessage: (f) => (hook = f) };
}

afterAll(async () => {
  for (const a of agents) if (a.process.exitCode === null) await a.kill9();
  for (const r of receivers) r.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('serve under Type=notify', () => {
  it('says READY=1 only once the API answers, pings the watchdog, and says STOPPING=1 on SIGTERM', async () => {
    const sock = await notifySocket();
    const base = await testEnv(tb.baseImage);
    dirs.push(base.WARMSTART_STATE_DIR!, base.WARMSTART_RUNTIME_DIR!);
    const listen = `127.0.0.1:${await freePort()}`;
    // On READY=1, ask the API at once: a READY sent before the listen finds nothing there.
    sock.onMessage(async (m) => {
      if (!m.fields.includes('READY=1')) return;
      try {
        m.healthAtArrival = (await fetch(`http://${listen}/health`)).status;
      } catch (err) {
        m.healthAtArrival = String(err);
      }
    });
    const agent = await startAgent(base, {
      env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000', WARMSTART_LISTEN: listen },
    });
    agents.push(agent);
    dirs.push(dirname(agent.env.WARMSTART_API_TOKEN_FILE!));
    await until(() => sock.messages.some((m) => m.fields.includes('READY=1')), 20_000);
    const ready = sock.messages.find((m) => m.fields.includes('READY=1'))!;
    await until(() => ready.healthAtArrival !== undefined, 5_000);
    expect(ready.healthAtArrival).toBe(200);
    expect(ready.fields.find((f) => f.startsWith('STATUS='))).toMatch(/^STATUS=serving on http 127\.0\.0\.1:\d+$/);
    // A status came first, while the agent was still starting.
    expect(sock.messages.indexOf(ready)).toBeGreaterThan(0);
    expect(sock.messages[0]!.fields.some((f) => f.startsWith('STATUS=starting'))).toBe(true);
    // Sent with the agent's own PID, so systemd counts it as the main process's even after systemd-notify exited.
    if (process.getuid?.() === 0) expect(ready.pid).toBe(agent.process.pid);

    // WATCHDOG_USEC=400 ms: a ping every 200 ms.
    const pings = (): number => sock.messages.filter((m) => m.fields.includes('WATCHDOG=1')).length;
    await until(() => pings() >= 3, 5_000);

    expect(await agent.term()).toBe(0);
    const stopping = sock.messages.find((m) => m.fields.includes('STOPPING=1'));
    expect(stopping?.fields.find((f) => f.startsWith('STATUS='))).toMatch(/^STATUS=draining/);
    // Nothing of the agent's environment (its API token file's contents) went to systemd.
    expect(JSON.stringify(sock.messages)).not.toContain(agent.token);
  });

  it('a watchdog meant for another process is not pinged', async () => {
    const sock = await notifySocket();
    const base = await testEnv(tb.baseImage);
    dirs.push(base.WARMSTART_STATE_DIR!, base.WARMSTART_RUNTIME_DIR!);
    const agent = await startAgent(base, { env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' } });
    agents.push(agent);
    dirs.push(dirname(agent.env.WARMSTART_API_TOKEN_FILE!));
    await until(() => sock.messages.some((m) => m.fields.includes('READY=1')), 20_000);
    await new Promise((r) => setTimeout(r, 800));
    expect(sock.messages.filter((m) => m.fields.includes('WATCHDOG=1'))).toEqual([]);
    expect(await agent.term()).toBe(0);
  });
});
