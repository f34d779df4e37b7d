// `limactl snapshot create|apply|delete|list INSTANCE --tag TAG` as Lima does
// it (cmd/limactl/snapshot.go, pkg/snapshot, the qemu driver):
// - every subcommand first warns "`limactl snapshot` is experimental";
// - an empty tag: "expected tag"; vz: the driver's errUnimplemented, printed
//   as `level=fatal msg=unimplemented` (lima-vm/lima#3682: "Snapshots only
//   work with QEMU instances");
// - running qemu: HMP savevm/loadvm/delvm/info snapshots through QMP. HMP
//   errors come back as output, not as errors: Lima logs them as a warning
//   "output: Error: …" and exits 0. loadvm of a missing tag reports QEMU's
//   "Snapshot 'T' does not exist in one or more devices"; delvm of a missing
//   tag deletes nothing and says nothing;
// - stopped qemu: `qemu-img snapshot -c|-a|-d|-l` on the disk, run with
//   cmd.Output(), so a failure reaches the user only as "exit status 1".
import { Fatal, log } from './log.mjs';
import { readDisk, saveDisk } from './disk.mjs';
import { inspect, instanceDir, writableDisk } from './store.mjs';

const stamp = (d) => {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
};

function table(snapshots, running) {
  const header = 'ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT';
  const rows = snapshots.map(
    (s) =>
      `${(running ? '--' : String(s.id)).padEnd(10)}${s.tag.padEnd(18)}${(s.vmState ? '1.41 MiB' : '0 B').padStart(7)} ${s.date} ${'00:00:00.000'.padStart(12)} ${'0'.padStart(10)}`,
  );
  return [header, ...rows].join('\n') + '\n';
}

export function snapshotCommand(sub, positional, flags) {
  log('warning', '`limactl snapshot` is experimental');
  const name = positional[0];
  if (name === undefined) throw new Fatal(`"limactl snapshot ${sub}" requires at least 1 arg(s), only received 0`);
  const inst = inspect(name);
  if (inst === null) throw new Fatal(`open ${instanceDir(name)}/lima.yaml: no such file or directory`);
  const tag = flags.tag ?? '';
  if (sub !== 'list' && tag === '') throw new Fatal('expected tag');
  if (inst.vmType !== 'qemu') throw new Fatal('unimplemented');

  const path = writableDisk(inst.dir);
  const { disk } = readDisk(path);
  if (!Array.isArray(disk.snapshots)) disk.snapshots = [];
  const running = inst.status === 'Running';
  const find = () => disk.snapshots.findIndex((s) => s.tag === tag);
  if (running) log('info', `Sending HMP ${{ create: 'savevm', apply: 'loadvm', delete: 'delvm', list: 'info' }[sub]} command`);

  switch (sub) {
    case 'create': {
      const i = find();
      if (running && i >= 0) disk.snapshots.splice(i, 1); // savevm replaces a snapshot of the same name
      const id = disk.snapshots.reduce((m, s) => Math.max(m, s.id), 0) + 1;
      disk.snapshots.push({ id, tag, date: stamp(new Date()), vmState: running, files: { ...disk.files }, deleted: [...(disk.deleted ?? [])] });
      saveDisk(path, disk);
      return;
    }
    case 'apply': {
      const s = disk.snapshots[find()];
      if (!s) {
        if (running) log('warning', `output: Error: Snapshot '${tag}' does not exist in one or more devices`);
        else throw new Fatal('exit status 1');
        return;
      }
      disk.files = { ...s.files };
      disk.deleted = [...s.deleted];
      saveDisk(path, disk);
      return;
    }
    case 'delete': {
      const i = find();
      if (i < 0) {
        if (!running) throw new Fatal('exit status 1');
        return;
      }
      disk.snapshots.splice(i, 1);
      saveDisk(path, disk);
      return;
    }
    case 'list': {
      if (disk.snapshots.length === 0) return;
      const out = table(disk.snapshots, running);
      if (flags.quiet) {
        for (const line of out.split('\n').slice(1)) if (line) process.stdout.write(`${line.split(/\s+/)[1]}\n`);
      } else process.stdout.write(out);
      return;
    }
    default:
      throw new Fatal(`unknown command "${sub}" for "limactl snapshot"`);
  }
}
