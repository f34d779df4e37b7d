/** How many build steps were taken from the layer cache, over every docker build of one `up`. */
export interface BuildStepCount {
  stepsCached: number;
  stepsTotal: number;
}

// Classic builder: `Step 3/21 : RUN ...`, later ` ---> Using cache`.
const CLASSIC_STEP = /^Step (\d+)\/(\d+) : (\S+)/;
const CLASSIC_CACHED = /^ ---> Using cache\s*$/;
// BuildKit plain progress: `#6 [stage 2/3] RUN ...`, later `#6 CACHED`.
// `[internal] ...` vertices carry no `x/y` and are not Dockerfile steps.
const BUILDKIT_VERTEX = /^#(\d+) \[(?:\S+ )?(\d+)\/(\d+)\] (\S+)/;
const BUILDKIT_NEW_BUILD = /^#\d+ \[internal\] load build definition/;
const BUILDKIT_CACHED = /^#(\d+) CACHED\s*$/;
// BuildKit reads each `--cache-from` itself, in a vertex of its own; when it cannot, it says so there and builds on without it.
const BUILDKIT_IMPORTING = /^#(\d+) importing cache manifest from (\S+)/;
const BUILDKIT_IMPORT_FAILED = /^#(\d+) ERROR: (failed to configure registry cache importer: .*)$/;
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;
// The CLI logs each command it runs as `Run: docker build ...`.
const BUILD_COMMAND = /^Run: \S*docker (?:buildx )?build\b/;
const CLASSIC_STAGE_NAME = /^Step \d+\/\d+ : FROM \S+ (?:AS|as) (\S+)/;
/**
 * The CLI's plumbing for features: it copies the feature sources into a
 * `dev_container_feature_content_temp` image and normalises them in
 * `dev_containers_feature_content_*` stages. Those steps only copy a few
 * files from the build context, are redone on every node, and their layers
 * are not in the finished image, so no cache image can carry them. They are
 * left out of the counts, which measure the work of the user's Dockerfile and
 * feature installs.
 */
const PLUMBING_BUILD = /\s-t\s+dev_container_feature_content_temp\b/;
const PLUMBING_STAGE = /^dev_containers_feature_content_/;

interface Step {
  cached: boolean;
}

/**
 * Counts cached and total build steps from the devcontainers CLI's log, one
 * line at a time, so it can sit on the live log. Accepts the CLI's
 * `--log-format json` lines (docker's output arrives in `raw` records whose
 * `text` is an arbitrary chunk, not a line) and plain text lines.
 *
 * FROM steps are left out of both counts: they never report a cache hit, so
 * counting them would make a fully cached build look partly cold. So are the
 * classic builder's `ARG`s before the first FROM, which it numbers as steps but
 * never runs.
 */
export class BuildStepCounter {
  private cached = 0;
  private total = 0;
  /** Unfinished line from `raw` chunks. */
  private pending = '';
  // Classic builder state, per docker build.
  private classicStep: Step | null = null;
  private classicSeenFrom = false;
  /** true while the current stage (or whole build) is the CLI's feature plumbing */
  private plumbingBuild = false;
  private plumbingStage = false;
  // BuildKit state, per docker build: vertex number -> step (null: not counted).
  private vertices = new Map<number, { title: string; step: Step | null }>();

  /** Feeds one line of the CLI's stderr (a JSON record or plain text). */
  push(line: string): void {
    const record = parseRecord(line);
    if (record === null) {
      for (const l of line.split('\n')) this.onLine(l);
      return;
    }
    if (record.type === 'raw') {
      const parts = (this.pending + record.text).split('\n');
      this.pending = parts.pop() ?? '';
      for (const l of parts) this.onLine(l);
      return;
    }
    // A `start`/`stop` record brackets each command the CLI runs; docker's
    // last line may lack its newline, so finish it before anything else.
    this.flush();
    for (const l of record.text.split('\n')) this.onLine(l);
  }

  /** BuildKit's own words for each `--cache-from` ref it could not read (the first time) */
  readonly cacheImportErrors = new Map<string, string>();
  /** which ref each importing vertex reads */
  private readonly importing = new Map<number, string>();

  /** The counts so far, or null when no countable build step was seen. */
  result(): BuildStepCount | null {
    this.flush();
    return this.total === 0 ? null : { stepsCached: this.cached, stepsTotal: this.total };
  }

  private flush(): void {
    if (this.pending !== '') this.onLine(this.pending);
    this.pending = '';
  }

  private onLine(raw: string): void {
    const line = raw.replace(ANSI, '').replace(/\r/g, '');
    if (BUILD_COMMAND.test(line)) {
      this.plumbingBuild = PLUMBING_BUILD.test(line);
      this.plumbingStage = false;
      return;
    }
    let m = CLASSIC_STEP.exec(line);
    if (m && (m[3] ?? '').toUpperCase() === 'FROM') {
      this.plumbingStage = PLUMBING_STAGE.test(CLASSIC_STAGE_NAME.exec(line)?.[1] ?? '');
    }
    if (m) return this.onClassicStep(Number(m[1]), (m[3] ?? '').toUpperCase());
    if (CLASSIC_CACHED.test(line)) return this.markCached(this.classicStep);
    if (BUILDKIT_NEW_BUILD.test(line)) {
      this.vertices.clear();
      return;
    }
    m = BUILDKIT_VERTEX.exec(line);
    if (m) {
      const stage = /^#\d+ \[(\S+) \d+\/\d+\]/.exec(line)?.[1] ?? '';
      return this.onVertex(Number(m[1]), line, (m[4] ?? '').toUpperCase(), PLUMBING_STAGE.test(stage) || this.plumbingBuild);
    }
    m = BUILDKIT_CACHED.exec(line);
    if (m) return this.markCached(this.vertices.get(Number(m[1]))?.step ?? null);
    m = BUILDKIT_IMPORTING.exec(line);
    if (m) return void this.importing.set(Number(m[1]), m[2] ?? '');
    m = BUILDKIT_IMPORT_FAILED.exec(line);
    const ref = m ? this.importing.get(Number(m[1])) : undefined;
    if (m && ref !== undefined && !this.cacheImportErrors.has(ref)) this.cacheImportErrors.set(ref, (m[2] ?? '').slice(0, 500));
  }

  private onClassicStep(n: number, instruction: string): void {
    // Each docker build numbers its steps from 1.
    if (n === 1) this.classicSeenFrom = false;
    this.classicStep = null;
    if (instruction === 'FROM') {
      this.classicSeenFrom = true;
      return;
    }
    if (!this.classicSeenFrom || this.plumbingBuild || this.plumbingStage) return;
    this.classicStep = this.count();
  }

  private onVertex(id: number, title: string, instruction: string, plumbing: boolean): void {
    const known = this.vertices.get(id);
    // Plain progress repeats a vertex's title when its output resumes.
    if (known?.title === title) return;
    this.vertices.set(id, { title, step: instruction === 'FROM' || plumbing ? null : this.count() });
  }

  private count(): Step {
    this.total += 1;
    return { cached: false };
  }

  private markCached(step: Step | null): void {
    if (step === null || step.cached) return;
    step.cached = true;
    this.cached += 1;
  }
}

/** Counts build steps over a whole recorded log (JSON lines or plain text). */
export function countBuildSteps(output: string): BuildStepCount | null {
  const counter = new BuildStepCounter();
  for (const line of output.split('\n')) counter.push(line);
  return counter.result();
}

function parseRecord(line: string): { type: string; text: string } | null {
  if (!line.startsWith('{')) return null;
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null) return null;
    const { type, text } = value as { type?: unknown; text?: unknown };
    if (typeof text !== 'string') return null;
    return { type: typeof type === 'string' ? type : 'text', text };
  } catch {
    // The CLI also writes plain lines to stderr (stack traces, object dumps).
    return null;
  }
}
