import { createWriteStream } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CLI } from './cli.js';
import { freePort } from './ports.js';

export interface Agent {
  url: string;
  token: string;
  env: Record<string, string>;
  process: ResultPromise;
  /** everything the process printed so far */
  output(): string;
  request(path: string, init?: RequestInit & { auth?: string | null }): Promise<Response>;
  /** SIGKILL, no goodbye */
  kill9(): Promise<void>;
  /** SIGTERM and wait; resolves with the exit code */
  term(): Promise<number | undefined>;
}

export interface StartOptions {
  /** the same dirs and token across restarts */
  reuse?: Agent;
  env?: Record<string, string>;
  token?: string;
}

/** Starts `warmstart serve` as a separate process, as systemd would, and waits for /health. */
export async function startAgent(base: Record<string, string>, o: StartOptions = {}): Promise<Agent> {
  let env: Record<string, string>;
  let token: string;
  if (o.reuse) {
    env = { ...o.reuse.env, ...o.env };
    token = o.reuse.token;
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-serve-'));
    token = o.token ?? `api-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    await writeFile(join(dir, 'api-token'), `${token}\n`, { mode: 0o600 });
    env = {
      ...base,
      WARMSTART_API_TOKEN_FILE: join(dir, 'api-token'),
      WARMSTART_ALLOW_LOCAL_REPOS: '1',
      WARMSTART_LISTEN: `127.0.0.1:${await freePort()}`,
      ...o.env,
    };
  }
  const url = `http://${env.WARMSTART_LISTEN}`;
  let out = '';
  // forceKillAfterDelay off: term() must see how the agent ends by itself (a
  // drain may rightly take longer than execa's default 5 s before SIGKILL).
  const proc = execa(process.execPath, ['--', CLI, 'serve'], {
    env,
    extendEnv: true,
    reject: false,
    stdin: 'ignore',
    buffer: false,
    forceKillAfterDelay: false,
  });
  // Also on disk beside the token file, appended across restarts, so that the
  // fault suite's secret audit can search every line an agent logged.
  const log = createWriteStream(join(dirname(env.WARMSTART_API_TOKEN_FILE!), 'serve.log'), { flags: 'a' });
  const onData = (d: Buffer): void => {
    out += d.toString();
    log.write(d);
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  void proc.finally(() => log.end());
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`warmstart serve did not come up (exit ${proc.exitCode}):\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const agent: Agent = {
    url,
    token,
    env,
    process: proc,
    output: () => out,
    request: (path, init = {}) => {
      const headers = new Headers(init.headers);
      const auth = init.auth === undefined ? `Bearer ${token}` : init.auth;
      if (auth !== null) headers.set('authorization', auth);
      return fetch(`${url}${path}`, { ...init, headers });
    },
    kill9: async () => {
      proc.kill('SIGKILL');
      await proc;
    },
    term: async () => {
      proc.kill('SIGTERM');
      const r = await proc;
      return r.exitCode;
    },
  };
  return agent;
}

/** Polls a workspace until its status is one of `until` (or the time is up). */
export async function waitForStatus(agent: Agent, id: string, until: string[], timeoutMs = 240_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, unknown> = {};
  while (Date.now() < deadline) {
    const r = await agent.request(`/v1/workspaces/${id}`);
    if (r.ok) {
      last = (await r.json()) as Record<string, unknown>;
      if (until.includes(String(last.status))) return last;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`workspace ${id} did not reach ${until.join('/')} in time; last: ${JSON.stringify(last)}`);
}
