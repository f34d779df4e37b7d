#!/usr/bin/env node
// A stand-in `cloud-hypervisor` binary with the whole fake API (fake-ch.ts),
// for tests that run the built CLI: `--api-socket path=<p> --log-file <f>`,
// one VMM per process, exiting on vmm.shutdown. TAP devices "exist" when a
// file of that name is in $FAKE_CH_TAP_DIR (the test's host hook makes it).
// Tests compile it with tsc first (test/integration/backends/cloud-hypervisor-ssh.test.ts).
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FakeVmm, type VmmHost } from './fake-ch.js';

const arg = (name: string): string => process.argv[process.argv.indexOf(name) + 1] ?? '';
const socket = arg('--api-socket').replace(/^path=/, '');
const log = arg('--log-file');
const tapDir = process.env['FAKE_CH_TAP_DIR'] ?? '';

const taps = { has: (name: string) => tapDir !== '' && existsSync(join(tapDir, name)) } as unknown as ReadonlySet<string>;
const host: VmmHost = {
  taps,
  readyDelayMs: 0,
  others: () => [],
  record: (_socket, what, status) => appendFileSync(log, `${what} ${status ?? ''}\n`),
  gone: () => process.exit(0),
  released: () => undefined,
};

const vmm = new FakeVmm(socket, host);
vmm.listen().then(
  () => appendFileSync(log, `listening on ${socket}\n`),
  (err: unknown) => {
    appendFileSync(log, `cannot listen: ${String(err)}\n`);
    process.exit(1);
  },
);
