import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DockerEngine } from '../docker/engine.js';

export const BUILD_LOG_NAME = '.devcontainer-build-error.log';
const MAX_LOG_CHARS = 8 * 1024 * 1024;

/**
 * The text of the CLI's log for one `up`, bounded (the newest lines are
 * kept), saved into the workspace when the build fails so the user finds it
 * next to their code.
 */
export class BuildLog {
  private lines: string[] = [];
  private chars = 0;

  add(text: string): void {
    this.lines.push(text);
    this.chars += text.length + 1;
    while (this.chars > MAX_LOG_CHARS && this.lines.length > 1) {
      this.chars -= (this.lines.shift() ?? '').length + 1;
    }
  }

  /** Writes `.devcontainer-build-error.log` at the volume's root, headed by the error. */
  async saveInto(
    engine: DockerEngine,
    o: { volume: string; scratchDir: string; error: { code: string; message: string; detail?: string } },
  ): Promise<void> {
    const dir = join(o.scratchDir, 'build-log');
    await mkdir(dir, { recursive: true });
    // The archive's root entry sets the volume root's mode: keep it ordinary.
    await chmod(dir, 0o755);
    const header = ['warmstart: the dev container did not start', `error: ${o.error.code}: ${o.error.message}`];
    if (o.error.detail) header.push(`detail: ${o.error.detail}`);
    await writeFile(join(dir, BUILD_LOG_NAME), `${header.join('\n')}\n\n${this.lines.join('\n')}\n`, { mode: 0o644 });
    await engine.copyIntoVolume(o.volume, dir);
  }
}
