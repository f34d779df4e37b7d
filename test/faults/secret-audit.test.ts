/**
 * The fault suite's secret audit, run after every other file of the suite
 * (test/faults/sequencer.ts puts it last): the git token, the registry
 * password, the GitHub App key and the API token the suite's agents and jobs
 * were given are searched for in everything the suite left behind — every
 * agent's log (serve.log), every CLI output, every state dir (records, event
 * logs, host clones with their `.git/config`), every temp file of the jobs and
 * of the devcontainers CLI, and every image the suite pushed to the testbed's
 * registries (config and layers, unpacked). Every workspace container the
 * suite removed was kept first (test/support/container-snapshot.ts: its
 * inspect and its whole filesystem, bind mounts and volume included) and is
 * searched for the node's own secrets — the node's git token, the registry
 * password, the GitHub App key, the API token; a token a job brought for its
 * own repository is offered inside that job's container by design, so it is
 * not looked for there. The scanner first finds planted copies, so zero hits
 * means something.
 */
import { readdir, readFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { report, suiteDir, suiteSecrets, table } from '../support/faults.js';
import { GIT_HTTP_USER } from '../support/git-https-server.js';
import { needlesFor, placesFromBlob, scan, type Needle, type Place } from '../support/secret-scan.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const scratchDirs: string[] = [];
afterAll(async () => {
  for (const d of scratchDirs) await rm(d, { recursive: true, force: true });
});

/** Where secrets live by design, and so are not searched: the files that hand them to the agent, and runtime dirs. */
function exemptReason(rel: string): string | null {
  const parts = rel.split(sep);
  if (parts[0] === 'secrets') return 'the suite’s own secret files';
  if (parts[0] === 'containers') return 'container snapshots (searched apart, for the node’s secrets)';
  if (parts.at(-1) === 'api-token') return 'an agent’s API token file';
  // The runtime dir is the tmpfs the agent keeps in-flight credentials in (docs/operations.md "The unit");
  // what must not outlive a job there is checked by the daemon's own tests.
  if (parts.some((p) => p.startsWith('warmstart-runtime-'))) return 'runtime dirs (in-flight credentials, a tmpfs under systemd)';
  return null;
}

/** Every file of the suite dir except the exempt ones, and the kinds the audit must have seen. */
async function suiteFiles(root: string): Promise<{ files: string[]; exempt: Map<string, number> }> {
  const files: string[] = [];
  const exempt = new Map<string, number>();
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    const why = exemptReason(relative(root, full));
    if (why) exempt.set(why, (exempt.get(why) ?? 0) + 1);
    else files.push(full);
  }
  return { files, exempt };
}

interface Pushed {
  repository: string;
  tag: string;
  blobs: string[];
}

/** Tags written to a registry's storage since the suite began, with the blobs their manifests name. */
async function pushedSince(storage: string, since: number): Promise<Pushed[]> {
  const v2 = join(storage, 'docker', 'registry', 'v2');
  const blobPath = (digest: string): string => {
    const hex = digest.replace(/^sha256:/, '');
    return join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  };
  const out: Pushed[] = [];
  let entries;
  try {
    entries = await readdir(join(v2, 'repositories'), { withFileTypes: true, recursive: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!(e.isFile() && e.name === 'link' && e.parentPath.endsWith(`${sep}current`))) continue;
    const link = join(e.parentPath, e.name);
    if ((await stat(link)).mtimeMs < since - 1_000) continue;
    const tagDir = join(e.parentPath, '..');
    const tag = tagDir.split(sep).at(-1)!;
    const repository = relative(join(v2, 'repositories'), join(tagDir, '..', '..', '..'));
    const manifestDigest = (await readFile(link, 'utf8')).trim();
    const manifest = JSON.parse(await readFile(blobPath(manifestDigest), 'utf8')) as {
      config?: { digest: string };
      layers?: { digest: string }[];
      manifests?: { digest: string }[];
    };
    const digests = [manifestDigest, manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest)].filter(
      (d): d is string => typeof d === 'string',
    );
    out.push({ repository, tag, blobs: digests.map(blobPath) });
  }
  return out;
}

/** The secrets that belong to the node, not to any one job. */
function nodeNeedles(): Needle[] {
  const s = suiteSecrets();
  return [
    ...needlesFor('node git token', s.nodeGitToken, GIT_HTTP_USER),
    ...needlesFor('registry password', tb.registryPassword, tb.registryUser),
    ...needlesFor('API token', s.apiToken),
  ];
}

function needles(): Needle[] {
  return [...needlesFor('git token', suiteSecrets().gitToken, GIT_HTTP_USER), ...nodeNeedles()];
}

/** The key as a whole and each line of its base64 body: a leak of any part is found. */
async function keyNeedles(): Promise<Needle[]> {
  const pem = await readFile(suiteSecrets().githubAppKeyFile, 'utf8');
  const body = pem.split('\n').filter((l) => l && !l.startsWith('-----'));
  return [
    { name: 'GitHub App key (PEM)', bytes: Buffer.from(pem.trim()) },
    ...body.filter((l) => l.length >= 32).map((l, i) => ({ name: `GitHub App key line ${i + 1}`, bytes: Buffer.from(l) })),
  ];
}

describe('secret audit after the fault suite', () => {
  it('finds none of the suite’s secrets in logs, events, state, CLI output, .git/config or pushed images', async () => {
    const root = suiteDir();
    const all = [...needles(), ...(await keyNeedles())];
    const scratch = await mkdtemp(join('/var/tmp', 'warmstart-audit-'));
    scratchDirs.push(scratch);

    // The scanner finds what it is looking for: one planted copy of each secret.
    const planted = all.filter((n) => / raw$|PEM/.test(n.name));
    const plantedFile = join(scratch, 'planted.gz');
    await writeFile(plantedFile, Buffer.concat(planted.map((n) => Buffer.concat([Buffer.from('x '), n.bytes]))));
    const control = scan(await placesFromBlob('planted', await readFile(plantedFile), scratch), planted);
    expect(new Set(control.map((h) => h.needle)).size).toBe(planted.length);

    const { files, exempt } = await suiteFiles(root);
    const kinds: Record<string, number> = {
      'agent logs (serve.log)': 0,
      'CLI outputs': 0,
      'event logs (events.ndjson)': 0,
      'workspace records (workspace.json)': 0,
      '.git/config': 0,
      'other files': 0,
    };
    const places: Place[] = [];
    for (const f of files) {
      const rel = relative(root, f);
      if (rel.endsWith('serve.log')) kinds['agent logs (serve.log)']! += 1;
      else if (rel.startsWith(`cli-output${sep}`)) kinds['CLI outputs']! += 1;
      else if (rel.endsWith('events.ndjson')) kinds['event logs (events.ndjson)']! += 1;
      else if (rel.endsWith('workspace.json')) kinds['workspace records (workspace.json)']! += 1;
      else if (rel.endsWith(`.git${sep}config`)) kinds['.git/config']! += 1;
      else kinds['other files']! += 1;
      places.push(...(await placesFromBlob(rel, await readFile(f), scratch)));
    }

    const since = suiteSecrets().startedAt;
    let pushedTags = 0;
    let blobs = 0;
    for (const storage of [join(tb.dir, 'registry-data'), join(tb.dir, 'open-registry-data')]) {
      for (const p of await pushedSince(storage, since)) {
        pushedTags += 1;
        for (const b of p.blobs) {
          blobs += 1;
          places.push(
            ...(await placesFromBlob(`registry ${p.repository}:${p.tag} ${b.split(sep).at(-2)!.slice(0, 12)}`, await readFile(b), scratch)),
          );
        }
      }
    }

    // Containers: the node's secrets only (see the head of this file).
    const containerPlaces: Place[] = [];
    let containers = 0;
    const snapshots = join(root, 'containers');
    for (const name of await readdir(snapshots).catch(() => [] as string[])) {
      if (name.endsWith('.inspect.json')) containers += 1;
      containerPlaces.push(...(await placesFromBlob(`container ${name}`, await readFile(join(snapshots, name)), scratch)));
    }
    const nodeAll = [...nodeNeedles(), ...(await keyNeedles())];

    const hits = [...scan(places, all), ...scan(containerPlaces, nodeAll)];
    const rows = Object.entries(kinds).map(([k, n]) => [k, String(n)]);
    rows.push(['pushed tags since the suite began', String(pushedTags)], ['registry blobs (config, layers, manifests)', String(blobs)]);
    rows.push(['places searched (files, unpacked archives included)', String(places.length)]);
    rows.push(['workspace containers (inspect + filesystem)', String(containers)], ['places in them', String(containerPlaces.length)]);
    for (const [why, n] of exempt) rows.push([`not searched: ${why}`, String(n)]);
    rows.push(['needles (raw, base64 at every alignment, user:secret forms, key lines)', String(all.length)]);
    rows.push(['hits', String(hits.length)]);
    report('Secret audit', table(['searched', 'count'], rows));

    expect(hits, `secrets found: ${hits.map((h) => `${h.needle} in ${h.place}@${h.offset}`).join('; ')}`).toEqual([]);
    // Not vacuous: the suite did leave each kind of place behind.
    for (const [k, n] of Object.entries(kinds)) expect(n, `no ${k} to search`).toBeGreaterThan(0);
    expect(pushedTags, 'the suite pushed no image to search').toBeGreaterThan(0);
    expect(containers, 'the suite left no container to search').toBeGreaterThan(0);
  });
});
