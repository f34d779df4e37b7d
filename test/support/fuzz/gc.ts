import { execa } from 'execa';

/**
 * A full garbage collection in another node process, through its inspector,
 * so that a memory reading shows what is live rather than what V8 has not
 * collected yet: V8 collects the old generation lazily, and a run that sends
 * multi-MB bodies leaves tens of MB of garbage that a reading right after it
 * would count.
 *
 * The process must have been started with `--inspect-port=127.0.0.1:<port>`
 * (in NODE_OPTIONS, which opens nothing by itself); the first call sends it
 * SIGUSR1, which makes node open the inspector on that port, on loopback.
 */
export async function collectGarbage(pid: number, port: number): Promise<void> {
  let url = await debuggerUrl(port);
  if (!url) {
    process.kill(pid, 'SIGUSR1');
    const deadline = Date.now() + 10_000;
    while (!url && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      url = await debuggerUrl(port);
    }
    if (!url) throw new Error(`no inspector on 127.0.0.1:${port} after SIGUSR1 to ${pid}`);
  }
  // Node 20 has a WebSocket client only behind a flag: a short-lived child speaks it.
  const r = await execa(process.execPath, ['--experimental-websocket', '-e', CLIENT, url], { reject: false, timeout: 60_000 });
  if (r.exitCode !== 0) throw new Error(`HeapProfiler.collectGarbage failed: ${String(r.stderr).slice(0, 300)}`);
}

async function debuggerUrl(port: number): Promise<string | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(2_000) });
    const targets = (await r.json()) as Array<{ webSocketDebuggerUrl?: string }>;
    return targets[0]?.webSocketDebuggerUrl ?? null;
  } catch {
    return null;
  }
}

const CLIENT = `
const ws = new WebSocket(process.argv[1]);
ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
ws.onmessage = (m) => {
  const reply = JSON.parse(m.data);
  if (reply.id !== 1) return;
  if (reply.error) { console.error(JSON.stringify(reply.error)); process.exit(1); }
  ws.close();
  process.exit(0);
};
ws.onerror = (e) => { console.error(String(e.message ?? e)); process.exit(1); };
`;
