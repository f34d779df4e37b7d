/**
 * What each dependency costs a process in memory: `node dist/test/bench/module-rss.js`.
 *
 * For every module of the table, fresh node processes (median of --runs,
 * default 5) import it alone, collect garbage twice and read their VmRSS and
 * heap, minus those of a bare node that imports nothing: what the module
 * brings with it, node's own code it touches included (module loaders,
 * streams, http), which several modules share, so the rows do not add up;
 * the last line is what `serve` loads at idle (SERVE_SET), all together.
 *
 * Modules are given as the agent imports them: dockerode through
 * agent/src/docker/dockerode-module.ts (its BuildKit session and SSH parts
 * deferred), the rest by name. Needs `npm run build` (the agent's modules
 * are imported from dist).
 *
 * Usage: node dist/test/bench/module-rss.js [--runs N] [--json]
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, round } from './stats.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCKERODE_AS_LOADED = new URL('../../agent/src/docker/dockerode-module.js', import.meta.url).href;

/** What `warmstart serve` has loaded once it is up and idle (test/bench/README.md "Where serve's memory goes"). */
const SERVE_SET = [DOCKERODE_AS_LOADED, 'fastify', 'pino', 'prom-client', 'zod', 'jsonc-parser'];

/** [label, specifier]; null specifier: nothing imported (the baseline). */
const MODULES: [string, string][] = [
  ['dockerode (as the agent loads it)', DOCKERODE_AS_LOADED],
  ['dockerode (all of it: ssh2, gRPC)', 'dockerode'],
  ['fastify', 'fastify'],
  ['pino', 'pino'],
  ['prom-client', 'prom-client'],
  ['zod', 'zod'],
  ['jsonc-parser', 'jsonc-parser'],
  ['execa', 'execa'],
  ['jose', 'jose'],
  ['yaml', 'yaml'],
  ['tar-stream', 'tar-stream'],
  ['@octokit/rest', '@octokit/rest'],
  ['@octokit/auth-app', '@octokit/auth-app'],
];

/** The child: imports its arguments in order, collects garbage, prints VmRSS and heap in KiB. */
const CHILD = `
import { readFileSync } from 'node:fs';
for (const spec of process.argv.slice(1)) {
  const m = await import(spec);
  // dockerode as the agent loads it: a client made, as serve makes one
  if (m.default && spec.endsWith('dockerode-module.js')) new m.default();
}
globalThis.gc(); await new Promise((r) => setTimeout(r, 300)); globalThis.gc();
const status = readFileSync('/proc/self/status', 'utf8');
process.stdout.write(JSON.stringify({ rssKb: Number(/VmRSS:\\s+(\\d+)/.exec(status)[1]), heapKb: Math.round(process.memoryUsage().heapUsed / 1024) }));
`;

function sample(specs: string[]): Promise<{ rssKb: number; heapKb: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--input-type=module', '-e', CHILD, '--', ...specs],
      { cwd: ROOT, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`importing ${specs.join(' ')}: ${stderr.trim() || err.message}`));
        resolve(JSON.parse(stdout) as { rssKb: number; heapKb: number });
      },
    );
  });
}

async function medianOf(specs: string[], runs: number): Promise<{ rssMb: number; heapMb: number }> {
  const got: { rssKb: number; heapKb: number }[] = [];
  for (let i = 0; i < runs; i++) got.push(await sample(specs));
  return { rssMb: median(got.map((g) => g.rssKb))! / 1024, heapMb: median(got.map((g) => g.heapKb))! / 1024 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, json: { type: 'boolean' } } });
  const runs = Number(values.runs ?? 5);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs takes a whole number 1..50, got ${values.runs}`);
  const bare = await medianOf([], runs);
  const set = await medianOf(SERVE_SET, runs);
  const rows = [];
  for (const [label, spec] of MODULES) {
    const alone = await medianOf([spec], runs);
    rows.push({
      module: label,
      rssMb: round(alone.rssMb - bare.rssMb, 1),
      heapMb: round(alone.heapMb - bare.heapMb, 1),
      inServeSet: SERVE_SET.includes(spec),
    });
  }
  const result = {
    node: process.version,
    runs,
    bareNodeMb: round(bare.rssMb, 1),
    serveSet: { rssMb: round(set.rssMb - bare.rssMb, 1), heapMb: round(set.heapMb - bare.heapMb, 1) },
    rows,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const out = [
    `node ${process.version}, median of ${runs} fresh processes each; a bare node: ${result.bareNodeMb} MB`,
    '',
    '| module | RSS over a bare node | heap over a bare node | loaded by an idle serve |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.module} | ${r.rssMb} MB | ${r.heapMb} MB | ${r.inServeSet ? 'yes' : 'no'} |`),
    `| all that an idle serve loads, together | ${result.serveSet.rssMb} MB | ${result.serveSet.heapMb} MB | |`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`module-rss: ${(err as Error).message}\n`);
  process.exit(1);
});
