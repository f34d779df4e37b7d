import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * Keeps what a container held for the fault suite's secret audit
 * (test/faults/secret-audit.test.ts) before a test removes it: its `docker
 * inspect` (env, mounts, labels, args) and its whole filesystem as a tar —
 * read from inside when it runs, so bind mounts and the workspace volume are
 * in it too, else `docker export`. Only where the suite asks for it
 * (WARMSTART_FAULTS_DIR set); elsewhere this does nothing.
 */
export async function snapshotForAudit(containerIds: string[]): Promise<void> {
  const suite = process.env.WARMSTART_FAULTS_DIR;
  if (!suite || containerIds.length === 0) return;
  const dir = join(suite, 'containers');
  await mkdir(dir, { recursive: true });
  for (const id of containerIds) {
    const inspect = await execa('docker', ['inspect', id], { reject: false });
    if (inspect.exitCode !== 0) continue; // already gone
    await writeFile(join(dir, `${id.slice(0, 12)}.inspect.json`), String(inspect.stdout));
    const running = (JSON.parse(String(inspect.stdout)) as { State?: { Running?: boolean } }[])[0]?.State?.Running === true;
    // busybox tar has no --exclude: name every top-level entry but the kernel's pseudo-filesystems.
    const tar = running
      ? await execa('docker', ['exec', id, 'sh', '-c', 'cd / && exec tar -cf - $(ls -A / | grep -vxE "proc|sys|dev")'], {
          encoding: 'buffer',
          reject: false,
        })
      : await execa('docker', ['export', id], { encoding: 'buffer', reject: false });
    const bytes = Buffer.from(tar.stdout as Uint8Array);
    if (bytes.length > 0) await writeFile(join(dir, `${id.slice(0, 12)}.fs.tar`), bytes);
  }
}
