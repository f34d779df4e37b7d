import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BuildStepCounter, countBuildSteps } from '../../../agent/src/cache/build-steps.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/build-output');
const fixture = (name: string): string => readFileSync(path.join(fixtures, name), 'utf8');

// classic-*.jsonl are real stderr of `devcontainer up --log-format json` (CLI
// 0.89.0, Docker 20.10 classic builder), trimmed to the builds, on a config
// with a 3-step Dockerfile (ENV, RUN, RUN) and a local feature. One `up` runs
// two docker builds: the feature-content image (FROM scratch + 1 COPY) and the
// Dockerfile with features (21 steps: 1 ARG before the first FROM, 4 FROM,
// 16 others). So 17 countable steps in all.
describe('countBuildSteps on recorded classic-builder output', () => {
  it('cold: 1 of 12 counted steps cached (feature plumbing left out)', () => {
    // Even on a cold engine the generated Dockerfile repeats `USER root` on a
    // parent it already built in an earlier stage, and docker reuses it.
    expect(countBuildSteps(fixture('classic-cold.jsonl'))).toEqual({ stepsCached: 1, stepsTotal: 12 });
  });

  it('second up with the images kept: 12 of 12 cached', () => {
    expect(countBuildSteps(fixture('classic-cached.jsonl'))).toEqual({ stepsCached: 12, stepsTotal: 12 });
  });

  it('failed build: counts the step that ran and ignores the stack trace lines', () => {
    // Dockerfile: FROM + `RUN echo boom && exit 3`; the build stops at step 3/4.
    expect(countBuildSteps(fixture('classic-failed.jsonl'))).toEqual({ stepsCached: 0, stepsTotal: 1 });
  });

  it('gives the same counts fed line by line to the streaming counter', () => {
    const counter = new BuildStepCounter();
    for (const line of fixture('classic-cached.jsonl').split('\n')) counter.push(line);
    expect(counter.result()).toEqual({ stepsCached: 12, stepsTotal: 12 });
  });

  it('reads the same output as plain text (--log-format text)', () => {
    const plain = fixture('classic-cached.jsonl')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; text: string })
      // text/start records are whole lines (they carry the `Run: docker build` lines);
      // raw records are docker's output chunks.
      .map((r) => (r.type === 'raw' ? r.text : `${r.text}\n`))
      .join('');
    expect(countBuildSteps(plain)).toEqual({ stepsCached: 12, stepsTotal: 12 });
  });
});

// buildkit-plain.txt is hand-written (no buildx on this machine) from BuildKit's
// documented plain progress format (`--progress=plain`): `#N [stage x/y] INSTR`
// headers, `#N CACHED` / `#N DONE`, `[internal]` vertices. Two builds as the CLI
// runs them: the feature-content image, then the Dockerfile with features.
describe('countBuildSteps on BuildKit plain progress', () => {
  it('sums both builds and leaves FROM out even when it says CACHED', () => {
    expect(countBuildSteps(fixture('buildkit-plain.txt'))).toEqual({ stepsCached: 3, stepsTotal: 6 });
  });

  it('reads it wrapped in JSON raw records split mid-line', () => {
    const text = fixture('buildkit-plain.txt');
    const counter = new BuildStepCounter();
    for (let i = 0; i < text.length; i += 37) {
      counter.push(JSON.stringify({ type: 'raw', level: 3, timestamp: 0, text: text.slice(i, i + 37) }));
    }
    expect(counter.result()).toEqual({ stepsCached: 3, stepsTotal: 6 });
  });

  it('does not count a repeated vertex title twice', () => {
    const lines = ['#6 [2/3] RUN make', '#7 [3/3] RUN test', '#6 [2/3] RUN make', '#6 CACHED', '#7 DONE 1.0s'];
    expect(countBuildSteps(lines.join('\n'))).toEqual({ stepsCached: 1, stepsTotal: 2 });
  });
});

describe('countBuildSteps edge cases', () => {
  it('returns null when no build step was seen (e.g. an image config)', () => {
    const log = [
      '{"type":"text","level":3,"timestamp":1,"text":"@devcontainers/cli 0.89.0."}',
      '{"type":"start","level":2,"timestamp":2,"text":"Run: docker run --sig-proxy=false busybox"}',
      '{"type":"raw","level":3,"timestamp":3,"text":"Container started\\n"}',
    ].join('\n');
    expect(countBuildSteps(log)).toBeNull();
    expect(countBuildSteps('')).toBeNull();
  });

  it('finishes a last step line that had no newline when the command stops', () => {
    const counter = new BuildStepCounter();
    counter.push('{"type":"raw","text":"Step 1/2 : FROM base\\n ---> abc\\nStep 2/2 : RUN x"}');
    counter.push('{"type":"raw","text":"\\n ---> Using cache"}');
    counter.push('{"type":"stop","text":"Run: docker build ."}');
    expect(counter.result()).toEqual({ stepsCached: 1, stepsTotal: 1 });
  });

  it('counts "Using cache" once per step', () => {
    const log = ['Step 1/2 : FROM base', 'Step 2/2 : RUN x', ' ---> Using cache', ' ---> Using cache'].join('\n');
    expect(countBuildSteps(log)).toEqual({ stepsCached: 1, stepsTotal: 1 });
  });
});

describe('the CLI feature plumbing', () => {
  it('leaves the feature-content build and dev_containers_feature_content_* stages out of the counts', () => {
    const log = [
      'Run: docker build -t dev_container_feature_content_temp -f /tmp/x/Dockerfile.buildContent /tmp/x',
      'Step 1/2 : FROM scratch',
      'Step 2/2 : COPY . /tmp/build-features/',
      ' ---> 1111',
      'Run: docker build -f /tmp/x/Dockerfile-with-features -t vsc-app --target dev_containers_target_stage /src',
      'Step 1/6 : FROM base AS dev_container_auto_added_stage_label',
      'Step 2/6 : RUN make',
      ' ---> Using cache',
      'Step 3/6 : FROM scratch AS dev_containers_feature_content_normalize',
      'Step 4/6 : COPY --from=x /a /b',
      ' ---> 2222',
      'Step 5/6 : FROM dev_container_auto_added_stage_label AS dev_containers_target_stage',
      'Step 6/6 : RUN ./install.sh',
      ' ---> Using cache',
    ].join('\n');
    expect(countBuildSteps(log)).toEqual({ stepsCached: 2, stepsTotal: 2 });
  });

  it("keeps BuildKit's words when it could not read the cache image, also from chunked raw records", () => {
    const counter = new BuildStepCounter();
    const line = '#4 ERROR: failed to configure registry cache importer: failed to do request: Head "https://r:5000/v2/a/manifests/t": EOF\n';
    for (const part of ['#4 importing cache manifest from r:5000/a:t\n', line.slice(0, 20), line.slice(20)]) {
      counter.push(JSON.stringify({ type: 'raw', level: 3, text: part }));
    }
    expect([...counter.cacheImportErrors]).toEqual([
      ['r:5000/a:t', 'failed to configure registry cache importer: failed to do request: Head "https://r:5000/v2/a/manifests/t": EOF'],
    ]);
    // Each ref in its own vertex: a repository's own missing cacheFrom is told apart from ours.
    const clean = new BuildStepCounter();
    clean.push('#4 importing cache manifest from r:5000/a:t');
    clean.push('#6 importing cache manifest from r:5002/elsewhere/own:latest');
    clean.push('#6 ERROR: failed to configure registry cache importer: r:5002/elsewhere/own:latest: not found');
    clean.push('#5 [2/2] RUN x');
    clean.push('#5 CACHED');
    expect(clean.cacheImportErrors.has('r:5000/a:t')).toBe(false);
    expect(clean.cacheImportErrors.get('r:5002/elsewhere/own:latest')).toBe(
      'failed to configure registry cache importer: r:5002/elsewhere/own:latest: not found',
    );
    expect(clean.result()).toEqual({ stepsCached: 1, stepsTotal: 1 });
  });
});
