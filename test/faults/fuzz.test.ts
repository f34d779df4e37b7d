import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../shared/src/api.js';
import { INPUT_ERROR_CODES, type ErrorCode } from '../../agent/src/errors.js';
import { runCli, testEnv, type CliRun } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { faultRow, githubAppEnv, report, suiteSecrets, table } from '../support/faults.js';
import { cliCase, type CliCase } from '../support/fuzz/cli-cases.js';
import { heavyCases, httpCase, type HttpCase } from '../support/fuzz/http-cases.js';
import { send, type Target } from '../support/fuzz/http-client.js';
import { collectGarbage } from '../support/fuzz/gc.js';
import { judge } from '../support/fuzz/judge.js';
import { freePort } from '../support/ports.js';
import { agentInvariants, stateInvariants } from '../support/invariants.js';
import { runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { FAKE_LIMACTL } from '../fakes/lima/harness.js';

/**
 * The fuzzer: thousands of generated requests against a real `warmstart
 * serve`, and a few hundred generated command lines against the CLI, from
 * one seed (WARMSTART_FUZZ_SEED, printed; the same seed sends the same
 * sequence). fast-check makes the inputs; on a failure it replays the first
 * failing request and shrinks it to the smallest one that still fails.
 *
 * Anything the agent might accept is kept harmless: clones go to a proxy on
 * a closed port (127.0.0.1:9) and ssh is `false`, the registry and callbacks
 * are on that closed port, local repositories are refused, destructive
 * requests that would pass validation name only this run's objects, no
 * machine backend has an image to launch, and everything made is deleted.
 */

const SEED = Number(process.env.WARMSTART_FUZZ_SEED ?? 20261123);
if (!Number.isSafeInteger(SEED)) throw new Error(`WARMSTART_FUZZ_SEED must be a whole number, got ${process.env.WARMSTART_FUZZ_SEED}`);
const REQUESTS = Number(process.env.WARMSTART_FUZZ_REQUESTS ?? 2500);
const CLI_CASES = Number(process.env.WARMSTART_FUZZ_CLI_CASES ?? 200);
/**
 * Requests before the memory baseline. Measured (RSS after a full GC, at
 * 100, 300, 500, 1,000 ... 9,000 requests): the agent grows 5-8 MB over its
 * first ~500 requests while code and caches settle, and 2-6 MB over the
 * next few thousand. A baseline after only 100 requests would count the
 * settling as drift.
 */
const WARMUP = 500;
const BATCH = 100;
const CONCURRENCY = 8;
const CLI_CONCURRENCY = 4;
const RSS_DRIFT_LIMIT = 0.2;

/** Codes given before a route's handler runs. */
const BEFORE_HANDLER = new Set(['UNAUTHENTICATED', 'NOT_FOUND', 'INVALID_REQUEST', 'INVALID_JSON', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE']);

const tb = loadTestbed();
const run = runId('fz');
const prefix = `${run}-`;
const DEAD = 'http://127.0.0.1:9';
/** Every https clone goes to a proxy that refuses at once; every ssh clone runs `false`. */
const NO_NETWORK = {
  https_proxy: DEAD,
  HTTPS_PROXY: DEAD,
  http_proxy: DEAD,
  HTTP_PROXY: DEAD,
  no_proxy: '',
  NO_PROXY: '',
  GIT_SSH_COMMAND: 'false',
};

interface Failure {
  index: number | string;
  line: string;
}

interface ApiRun {
  cases: number;
  answers: number;
  byClass: Record<string, number>;
  unexpected5xx: number;
  documented5xx: number;
  noAnswer: number;
  crashes: number;
  rssStartKb: number;
  rssEndKb: number;
  /** V8 heap in use at the baseline (after the same GC) */
  heapStartKb: number;
  /** RSS after every batch, for the report when it drifts */
  rssSeriesKb: number[];
  /** V8 heap in use after every batch (from /metrics), to tell a leak from allocator slack */
  heapSeriesKb: number[];
  /** ids of the jobs the agent took (202), and how many 202s */
  accepted: Set<string>;
  acceptedCount: number;
  codes: Map<string, number>;
  count401: number;
  failures: Failure[];
  /** problems by kind: error shape, 401 header, auth verdict */
  shapeProblems: number;
  authHeaderProblems: number;
  authVerdictProblems: number;
  /** `METHOD /route` of every documented operation whose handler some request ran */
  reached: Set<string>;
  /** the first failing request, shrunk */
  shrunk: string | null;
  digest: string;
}

function digestOf(cases: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(cases)).digest('hex').slice(0, 16);
}

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
}

async function heapKb(agent: Agent): Promise<number> {
  const text = await (await agent.request('/metrics')).text();
  return Math.round(Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / 1024);
}

async function alive(agent: Agent): Promise<boolean> {
  if (agent.process.exitCode !== null) return false;
  try {
    const r = await fetch(`${agent.url}/health`, { signal: AbortSignal.timeout(10_000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

/** Runs `fn` over `items` with at most `n` at once. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function describeCase(c: HttpCase, target: string): string {
  const shown = target.length > 90 ? `${target.slice(0, 90)}…` : target;
  return `${c.family} ${c.method} ${JSON.stringify(shown)} auth=${c.auth}${c.mutation !== 'none' ? ` ${c.mutation}` : ''}`;
}

describe('fuzzer: generated requests and command lines', () => {
  let agent: Agent;
  let target: Target;
  let api: ApiRun | null = null;
  let cliSummary = '';
  let inspectPort = 0;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warmstart-fuzz-'));
    inspectPort = await freePort();
    await chmod(FAKE_LIMACTL, 0o755); // the executable bit can be lost in a checkout
    const base = await testEnv(tb.baseImage);
    agent = await startAgent(base, {
      token: suiteSecrets().apiToken,
      env: {
        ...githubAppEnv(),
        // Local paths and file:// URLs refused, as in production.
        WARMSTART_ALLOW_LOCAL_REPOS: '',
        // Set, so the GitHub App does not make ghcr.io the default; nothing answers there.
        WARMSTART_CACHE_REGISTRY: '127.0.0.1:9',
        // The well-formed bodies' callback (test/support/fuzz/http-client.ts): a listed origin, so they are accepted.
        WARMSTART_CALLBACK_ORIGINS: 'http://127.0.0.1:9',
        ...NO_NETWORK,
        // Machine backends: docker is the real engine (launch never pulls), lima the
        // fake limactl with an empty home, no Incus daemon, no cloud-hypervisor binary.
        WARMSTART_INCUS_SOCKET: join(dir, 'no-incus.sock'),
        WARMSTART_LIMACTL: FAKE_LIMACTL,
        LIMA_HOME: join(dir, 'lima-home'),
        WARMSTART_CLOUD_HYPERVISOR: join(dir, 'no-cloud-hypervisor'),
        WARMSTART_BUILD_TIMEOUT_SECONDS: '60',
        WARMSTART_PUSH_TIMEOUT_SECONDS: '5',
        WARMSTART_SHUTDOWN_GRACE_SECONDS: '5',
        // glibc gives threads that allocate their own malloc arenas and
        // fragments them; two arenas, the usual setting for a node service,
        // keep RSS closer to what is live, which is what the memory check is
        // after (measured: drift 11-16% without, 8-12% with, on a heap that
        // stays flat after 1000 requests).
        MALLOC_ARENA_MAX: '2',
        // Opens nothing by itself; collectGarbage() turns the inspector on (SIGUSR1) for the memory readings.
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect-port=127.0.0.1:${inspectPort}`.trim(),
      },
    });
    const u = new URL(agent.url);
    target = { host: u.hostname, port: Number(u.port), token: agent.token, prefix };
    process.stdout.write(`fuzz seed ${SEED} (set WARMSTART_FUZZ_SEED to replay), run ${run}\n`);
  });

  afterAll(async () => {
    const ids = await ourWorkspaces().catch(() => [] as string[]);
    if (agent && agent.process.exitCode === null) await agent.term();
    await cleanUp({ runId: run, workspaceIds: ids });
  });

  async function ourWorkspaces(): Promise<string[]> {
    const r = await agent.request('/v1/workspaces');
    const body = (await r.json()) as { workspaces: Array<{ id: string }> };
    return body.workspaces.map((w) => w.id);
  }

  it('the same seed gives the same sequence, another seed another', async () => {
    await faultRow({ fault: 'fuzz: seeded generation', expected: 'same seed → same requests and command lines; other seed → others' }, async () => {
      const a = digestOf(fc.sample(httpCase, { seed: SEED, numRuns: 200 }));
      const b = digestOf(fc.sample(httpCase, { seed: SEED, numRuns: 200 }));
      const other = digestOf(fc.sample(httpCase, { seed: SEED + 1, numRuns: 200 }));
      const ca = digestOf(fc.sample(cliCase, { seed: SEED, numRuns: 50 }));
      const cb = digestOf(fc.sample(cliCase, { seed: SEED, numRuns: 50 }));
      expect(b).toBe(a);
      expect(cb).toBe(ca);
      expect(other).not.toBe(a);
      return `seed ${SEED}: requests ${a} twice, seed ${SEED + 1}: ${other}; command lines ${ca} twice`;
    });
  });

  it(`${REQUESTS} generated requests: no 5xx, no crash`, async () => {
    await faultRow(
      {
        fault: `fuzz: ${REQUESTS} generated API requests (every route, bad JSON/types/unicode/traversal, header abuse, oversized bodies, odd methods)`,
        expected: 'no 5xx beyond documented backend 501/503; agent never exits; /health answers after every batch',
      },
      async () => {
        const cases = fc.sample(httpCase, { seed: SEED, numRuns: REQUESTS });
        const heavy = heavyCases();
        const r: ApiRun = {
          cases: 0,
          answers: 0,
          byClass: { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
          unexpected5xx: 0,
          documented5xx: 0,
          noAnswer: 0,
          crashes: 0,
          rssStartKb: NaN,
          rssEndKb: NaN,
          heapStartKb: NaN,
          rssSeriesKb: [],
          heapSeriesKb: [],
          accepted: new Set(),
          acceptedCount: 0,
          reached: new Set(),
          codes: new Map(),
          count401: 0,
          failures: [],
          shapeProblems: 0,
          authHeaderProblems: 0,
          authVerdictProblems: 0,
          shrunk: null,
          digest: digestOf(cases),
        };
        api = r;
        const pid = agent.process.pid!;
        /** index: into the seeded sequence; a warm-up case is `w<n>` */
        const sendOne = async ([c, index]: [HttpCase, number | string]): Promise<void> => {
          const sent = await send(c, target);
          const v = judge(c, sent);
          r.cases += 1;
          r.answers += v.statuses.length;
          if (v.statuses.length === 0) r.noAnswer += 1;
          for (const [i, s] of v.statuses.entries()) {
            const cls = `${Math.floor(s / 100)}xx`;
            r.byClass[cls] = (r.byClass[cls] ?? 0) + 1;
            if (s === 401) r.count401 += 1;
            if (s === 202) {
              r.acceptedCount += 1;
              r.accepted.add((JSON.parse(sent.answers[i]!.body ?? '{}') as { id?: string }).id ?? '?');
            }
          }
          for (const code of v.codes) r.codes.set(code, (r.codes.get(code) ?? 0) + 1);
          // The handler ran: a 2xx, or a refusal only the handler can make (not auth, routing, framing or the schema).
          if (v.answers.some((a) => a.status < 400 || (a.code !== undefined && !BEFORE_HANDLER.has(a.code)))) {
            r.reached.add(`${c.method.toUpperCase()} ${c.route}`);
          }
          r.unexpected5xx += v.unexpected5xx;
          r.documented5xx += v.documented5xx;
          for (const p of v.problems) {
            if (/body is not|Content-Type|unknown code/.test(p)) r.shapeProblems += 1;
            else if (/WWW-Authenticate/.test(p)) r.authHeaderProblems += 1;
            else if (/auth form/.test(p)) r.authVerdictProblems += 1;
          }
          if (v.problems.length) r.failures.push({ index, line: `#${index} ${describeCase(c, sent.built.target)} → ${v.problems.join('; ')}` });
        };

        // The warm-up: the heaviest requests once each, then the start of the
        // sequence, WARMUP in all; the memory baseline is read after it. Both
        // readings follow a full GC: V8 collects lazily, and RSS right after
        // a batch would count its not yet collected multi-MB bodies.
        const all: Array<[HttpCase, number | string]> = [
          ...heavy.map((c, i): [HttpCase, string] => [c, `w${i}`]),
          ...cases.map((c, i): [HttpCase, number] => [c, i]),
        ];
        const batches: Array<typeof all> = [];
        for (let at = 0; at < all.length; at += BATCH) batches.push(all.slice(at, at + BATCH));
        const baselineAfter = Math.ceil(WARMUP / BATCH) - 1;
        for (const [n, batch] of batches.entries()) {
          await pool(batch, CONCURRENCY, sendOne);
          if (!(await alive(agent))) {
            r.crashes += 1;
            break;
          }
          const reading = n === baselineAfter || n === batches.length - 1;
          if (reading) await collectGarbage(pid, inspectPort);
          r.rssSeriesKb.push(await rssKb(pid));
          r.heapSeriesKb.push(await heapKb(agent));
          if (n === baselineAfter) {
            r.rssStartKb = r.rssSeriesKb.at(-1)!;
            r.heapStartKb = r.heapSeriesKb.at(-1)!;
          }
          if (n === batches.length - 1) r.rssEndKb = r.rssSeriesKb.at(-1)!;
        }

        const first = r.failures.filter((f) => typeof f.index === 'number').sort((a, b) => Number(a.index) - Number(b.index))[0];
        if (first && r.crashes === 0) {
          // Replays the first failing request of the sequence from the seed and shrinks it.
          const check = await fc.check(
            fc.asyncProperty(httpCase, async (c) => judge(c, await send(c, target)).problems.length === 0),
            { seed: SEED, path: String(first.index), interruptAfterTimeLimit: 30_000 },
          );
          r.shrunk = check.failed ? JSON.stringify(check.counterexample?.[0]).slice(0, 600) : 'did not fail again on replay';
        }

        const fivexx = r.failures.filter((f) => /→ .*\b5\d\d\b/.test(f.line)).map((f) => f.line);
        expect(r.crashes, 'agent crashed or stopped answering /health').toBe(0);
        expect(r.unexpected5xx, `5xx answers:\n${fivexx.slice(0, 10).join('\n')}\nshrunk: ${r.shrunk}`).toBe(0);
        expect(
          r.noAnswer,
          `requests without an answer:\n${r.failures
            .filter((f) => /no answer/.test(f.line))
            .slice(0, 10)
            .map((f) => f.line)
            .join('\n')}`,
        ).toBe(0);
        expect(r.cases).toBe(REQUESTS + heavy.length);
        // Every operation the API documents had its handler run by some request.
        const doc = (await (await agent.request('/v1/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
        const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
        expect(
          operations.filter((o) => !r.reached.has(o)),
          'documented operations whose handler no request reached',
        ).toEqual([]);
        expect(r.accepted.size, 'no job was accepted: the handlers behind validation never ran').toBeGreaterThan(0);
        return `${r.cases} sent (seed ${SEED}, sequence ${r.digest}; ${heavy.length} of the heaviest kinds in the ${WARMUP}-request warm-up): ${r.answers} answers, 2xx ${r.byClass['2xx']} (${r.acceptedCount} jobs accepted), handlers of all ${operations.length} documented operations reached, 4xx ${r.byClass['4xx']}, 5xx ${r.unexpected5xx} (+${r.documented5xx} documented backend 501/503); no answer ${r.noAnswer}; crashes ${r.crashes}; agent serving`;
      },
    );
  });

  it('every refusal has the one error shape; 401s carry WWW-Authenticate: Bearer', async () => {
    await faultRow(
      {
        fault: 'fuzz: error answers',
        expected:
          'every 4xx/5xx body is {code, message, detail?, validations?} with a known code; 401 has WWW-Authenticate: Bearer; refused credentials never pass auth',
      },
      async () => {
        expect(api, 'the fuzz run did not happen').not.toBeNull();
        const r = api!;
        const lines = (re: RegExp): string =>
          r.failures
            .filter((f) => re.test(f.line))
            .slice(0, 10)
            .map((f) => f.line)
            .join('\n');
        expect(r.shapeProblems, `answers not in the error shape:\n${lines(/body is not|Content-Type|unknown code/)}\nshrunk: ${r.shrunk}`).toBe(0);
        expect(r.authHeaderProblems, `401s without WWW-Authenticate: Bearer:\n${lines(/WWW-Authenticate/)}`).toBe(0);
        expect(r.authVerdictProblems, `auth verdicts:\n${lines(/auth form/)}\nshrunk: ${r.shrunk}`).toBe(0);
        expect(
          r.failures,
          r.failures
            .slice(0, 10)
            .map((f) => f.line)
            .join('\n'),
        ).toEqual([]);
        expect(r.byClass['4xx']).toBeGreaterThan(0);
        expect(r.count401).toBeGreaterThan(0);
        return `${r.byClass['4xx']} 4xx + ${r.byClass['5xx']} 5xx bodies in the shape, ${r.codes.size} distinct codes; ${r.count401} 401s all with WWW-Authenticate: Bearer; 0 auth verdicts wrong`;
      },
    );
  });

  it('the agent does not grow: RSS at the end within 20% of the start', async () => {
    await faultRow(
      {
        fault: 'fuzz: memory over the run',
        expected: `agent RSS at the end within ${RSS_DRIFT_LIMIT * 100}% of the start (taken after a warm-up of ${WARMUP} requests)`,
      },
      async () => {
        expect(api, 'the fuzz run did not happen').not.toBeNull();
        const r = api!;
        expect(Number.isFinite(r.rssStartKb) && Number.isFinite(r.rssEndKb), 'RSS not measured').toBe(true);
        const drift = (r.rssEndKb - r.rssStartKb) / r.rssStartKb;
        expect(
          Math.abs(drift),
          `RSS ${r.rssStartKb} kB → ${r.rssEndKb} kB; after each batch: ${r.rssSeriesKb.map((k) => Math.round(k / 1024)).join(' ')} MiB; heap used: ${r.heapSeriesKb.map((k) => Math.round(k / 1024)).join(' ')} MiB`,
        ).toBeLessThanOrEqual(RSS_DRIFT_LIMIT);
        const heap = (k: number | undefined): string => `${((k ?? NaN) / 1024).toFixed(1)} MiB`;
        return `RSS after a full GC: ${(r.rssStartKb / 1024).toFixed(1)} MiB after the ${WARMUP}-request warm-up → ${(r.rssEndKb / 1024).toFixed(1)} MiB after ${r.cases} (${(drift * 100).toFixed(1)}%); V8 heap in use ${heap(r.heapStartKb)} → ${heap(r.heapSeriesKb.at(-1))}`;
      },
    );
  });

  it('accepted jobs fail offline; whatever the fuzz made is deleted', async () => {
    await faultRow(
      {
        fault: 'fuzz: accepted jobs and objects',
        expected:
          'every accepted job ends failed at the clone without reaching out (proxy/ssh on a closed port); DELETE removes it; no container or volume left',
      },
      async () => {
        expect(api, 'the fuzz run did not happen').not.toBeNull();
        const accepted = [...api!.accepted];
        const ids = await ourWorkspaces();
        expect(
          ids.every((id) => id.startsWith(prefix)),
          `workspaces not of this run: ${ids.join(', ')}`,
        ).toBe(true);
        const ends = new Map<string, number>();
        const settled: string[] = [];
        for (const id of ids) {
          // `deleting`: a fuzzed DELETE without purge took its containers and kept the record.
          const v = await waitForStatus(agent, id, ['ready', 'recovery', 'failed', 'deleting'], 120_000);
          const err = v.error as { code?: string; detail?: string } | null;
          const end = `${v.status}${err?.code ? ` ${err.code}` : ''}`;
          ends.set(end, (ends.get(end) ?? 0) + 1);
          if (v.status !== 'deleting') settled.push(id);
          expect(v.status, `${id}: ${JSON.stringify(err)}`).toMatch(/^(failed|deleting)$/);
          // Deleted before its clone ended: nothing ran to check.
          if (v.status === 'deleting' && (v.outcome === null || err?.code === 'JOB_CANCELLED')) continue;
          // The clone went to the proxy on the closed port, or ssh ran `false`: nothing left the machine.
          expect(err?.code, `${id}: ${JSON.stringify(err)}`).toBe('GIT_CLONE_FAILED');
          expect(err?.detail ?? '', `${id}: ${JSON.stringify(err)}`).toMatch(/127\.0\.0\.1 port 9|Could not read from remote repository/);
        }
        const before = settled.length ? await agentInvariants(agent, settled) : 'none settled';
        for (const id of ids) {
          const r = await agent.request(`/v1/workspaces/${id}?purge=true`, { method: 'DELETE' });
          expect(r.status, `DELETE ${id}`).toBe(200);
        }
        for (const id of accepted) expect((await agent.request(`/v1/workspaces/${id}`)).status, id).toBe(404);
        const after = await agentInvariants(agent, accepted);

        // Machines and golden images the fuzz may have made (all named with the run's prefix).
        let objects = 0;
        for (const backend of ['docker', 'lima', 'cloud-hypervisor']) {
          const list = (await (await agent.request(`/v1/machines?backend=${backend}`)).json()) as { machines?: Array<{ name: string }> };
          for (const m of list.machines ?? []) {
            if (!m.name.startsWith(prefix) && !m.name.startsWith(`m${prefix}`)) continue;
            objects += 1;
            await agent.request(`/v1/machines/${m.name}?backend=${backend}`, { method: 'DELETE' });
          }
        }
        const images = (await (await agent.request('/v1/images')).json()) as { images?: Array<{ name: string; tag: string }> };
        for (const i of images.images ?? []) {
          if (!i.name.startsWith(prefix)) continue;
          objects += 1;
          await agent.request(`/v1/images/${i.name}?tag=${i.tag}`, { method: 'DELETE' });
        }
        const volumes = String((await execa('docker', ['volume', 'ls', '-q', '--filter', `name=warmstart-ws-${prefix}`])).stdout)
          .split('\n')
          .filter(Boolean);
        expect(volumes).toEqual([]);
        const endings = [...ends].map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
        return `${accepted.length} ids accepted (${api!.acceptedCount} times); ${ids.length} left at the end: ${endings}, every clone refused by the closed port; ${accepted.length - ids.length} purged by fuzzed DELETEs; ${objects} machines/images made; before DELETE: ${before}; after: ${after}`;
      },
    );
  });

  it(`${CLI_CASES} generated command lines for up/down/cache ref: exit 2, a stable code, nothing made`, async () => {
    await faultRow(
      {
        fault: `fuzz: ${CLI_CASES} generated CLI command lines (up/down/cache ref: bad ids, config names, traversal repos, unknown flags, huge args, unicode)`,
        expected:
          'exit 2, `warmstart: <CODE>:` on stderr with an input code, JSON error with --json, no stack trace, nothing in the state dir, no volume or container',
      },
      async () => {
        const env = await testEnv(tb.baseImage, NO_NETWORK);
        const cases = fc.sample(cliCase, { seed: SEED, numRuns: CLI_CASES });
        const problems: string[] = [];
        const codes = new Map<string, number>();
        const ids: string[] = [];
        const byCommand = new Map<string, number>();
        const one = async (index: number): Promise<void> => {
          const c = cases[index]!;
          const id = `${prefix}c${index}`;
          ids.push(id);
          const argv = [...c.command.split(' '), ...c.argv.map((a) => a.replaceAll('@@ID@@', id))];
          const r = await runCli(argv, { env, input: c.stdin });
          byCommand.set(c.command, (byCommand.get(c.command) ?? 0) + 1);
          const p = cliProblems(c, r);
          const code = /^warmstart: ([A-Z_]+):/m.exec(r.stderr)?.[1];
          if (code) codes.set(code, (codes.get(code) ?? 0) + 1);
          if (p.length)
            problems.push(
              `#${index} ${c.command} ${JSON.stringify(argv.slice(c.command.split(' ').length).map((a) => (a.length > 60 ? `${a.slice(0, 60)}…(${a.length})` : a)))} [${c.faults.join(', ')}] → ${p.join('; ')}`,
            );
        };
        const indexes = cases.map((_c, i) => i);
        for (let start = 0; start < indexes.length; start += CLI_CONCURRENCY * 4) {
          await pool(indexes.slice(start, start + CLI_CONCURRENCY * 4), CLI_CONCURRENCY, one);
          const made = await listTree(env.WARMSTART_STATE_DIR!);
          if (made.length)
            problems.push(`state dir not empty after cases ${start}..${start + CLI_CONCURRENCY * 4 - 1}: ${made.slice(0, 5).join(', ')}`);
        }
        const runtime = await listTree(env.WARMSTART_RUNTIME_DIR!);
        expect(problems, problems.slice(0, 15).join('\n')).toEqual([]);
        expect(runtime, 'runtime dir').toEqual([]);
        const volumes = String((await execa('docker', ['volume', 'ls', '-q', '--filter', `name=warmstart-ws-${prefix}c`])).stdout)
          .split('\n')
          .filter(Boolean);
        expect(volumes).toEqual([]);
        const invariants = await stateInvariants(env.WARMSTART_STATE_DIR!, ids);
        cliSummary = `CLI: ${cases.length} generated command lines (seed ${SEED}), all refused with exit 2: ${[...codes]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`;
        const top = [...codes]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${n}`)
          .join(', ');
        return `${cases.length} runs (${[...byCommand].map(([k, n]) => `${k} ${n}`).join(', ')}): all exit 2 with an input code (${top}), no stack trace, state and runtime dirs empty, no volume; ${invariants}`;
      },
    );
  });

  afterAll(() => {
    if (!api) return;
    // (runs before the cleanup hook above: vitest runs afterAll hooks last-registered first)
    const r = api;
    const drift = ((r.rssEndKb - r.rssStartKb) / r.rssStartKb) * 100;
    report(
      'Fuzzer',
      `${table(
        [
          'seed',
          'requests',
          'answers',
          '2xx',
          '3xx',
          '4xx',
          '5xx',
          'documented 501/503',
          'no answer',
          'crashes',
          'RSS start (after warm-up)',
          'RSS end',
          'drift',
        ],
        [
          [
            String(SEED),
            String(r.cases),
            String(r.answers),
            String(r.byClass['2xx'] ?? 0),
            String(r.byClass['3xx'] ?? 0),
            String(r.byClass['4xx'] ?? 0),
            String(r.unexpected5xx),
            String(r.documented5xx),
            String(r.noAnswer),
            String(r.crashes),
            `${(r.rssStartKb / 1024).toFixed(1)} MiB after ${WARMUP}`,
            `${(r.rssEndKb / 1024).toFixed(1)} MiB`,
            `${drift.toFixed(1)}%`,
          ],
        ],
      )}\nRSS start read after a warm-up of ${WARMUP} requests (the ${heavyCases().length} heaviest kinds once each, then the start of the sequence), start and end each after a full GC (inspector HeapProfiler.collectGarbage); agent run with MALLOC_ARENA_MAX=2; V8 heap in use ${(r.heapStartKb / 1024).toFixed(1)} → ${(r.heapSeriesKb.at(-1)! / 1024).toFixed(1)} MiB\n${cliSummary}\nerror codes: ${[
        ...r.codes,
      ]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}\nreplay: WARMSTART_FUZZ_SEED=${SEED} (sequence ${r.digest})`,
    );
  });
});

const StrictApiError = ApiError.strict();
const STACK = /^\s+at .+(:\d+:\d+\)?|native\)?)$/m;

/** What a refused command line must look like: exit 2, one `warmstart: CODE: message` line, JSON error with --json. */
function cliProblems(c: CliCase, r: CliRun): string[] {
  const p: string[] = [];
  if (r.code !== 2) p.push(`exit ${r.code}`);
  if (STACK.test(r.stderr) || STACK.test(r.stdout)) p.push('stack trace in the output');
  if (/INTERNAL/.test(r.stderr)) p.push('INTERNAL error');
  const code = /^warmstart: ([A-Z_]+): \S/m.exec(r.stderr)?.[1];
  if (!code) p.push(`no 'warmstart: CODE: message' on stderr: ${JSON.stringify(r.stderr.slice(0, 200))}`);
  else {
    if (!INPUT_ERROR_CODES.has(code as ErrorCode)) p.push(`${code} is not an input error code`);
    if (!c.expect.includes(code)) p.push(`${code}, expected one of ${c.expect.join('/')}`);
  }
  const json = c.argv.includes('--json');
  if (json) {
    const lines = r.stdout.trim().split('\n');
    let body: unknown;
    try {
      body = JSON.parse(lines[0] ?? '');
    } catch {
      body = undefined;
    }
    const err = (body as { error?: unknown } | undefined)?.error;
    if (lines.length !== 1 || !StrictApiError.safeParse(err).success || (err as { code?: string }).code !== code) {
      p.push(`--json stdout is not one {"error": {code, message}} line: ${JSON.stringify(r.stdout.slice(0, 200))}`);
    }
  } else if (r.stdout.trim() !== '') {
    p.push(`stdout not empty: ${JSON.stringify(r.stdout.slice(0, 120))}`);
  }
  return p;
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) out.push(join(e.parentPath ?? e.path, e.name));
  return out;
}
