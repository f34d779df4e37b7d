import { defineConfig } from 'vitest/config';
import { AuditLastSequencer } from './faults/sequencer.js';

// Unit tests run alone and fast (`npm run test:unit`); integration tests use the
// real Docker engine, registry and devcontainers CLI brought up by
// test/testbed/up.sh, so they run one file at a time on this 2-core machine.
// The fault suite (`npm run test:faults`) runs after both, one file at a time:
// it restarts the engine, fills disks and kills agents, which nothing else may
// see; its secret audit runs last, over everything the suite left behind.
// The release test (`npm run test:release`) comes after all of them.
export default defineConfig({
  test: {
    sequence: { sequencer: AuditLastSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          // One test per attack on the trust boundaries (docs/how-it-works.md "Trust model"),
          // against a real agent, engine, registry and git, with stand-in
          // servers on loopback that record what reached them.
          name: 'security',
          include: ['test/security/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // After the integration tests, not beside them: two agents building
          // features at once on one engine share the CLI's feature-content tag
          // (docs/operations.md "Known limits").
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          globalSetup: ['test/faults/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 2 },
        },
      },
      {
        test: {
          // The release on a bare Debian 12 node (test/release/bare-node.test.ts):
          // builds the release tarball, boots a debootstrapped root filesystem
          // as containers of the testbed's engine and prepares the example
          // there. Last and alone: it builds features on the shared engine, as
          // the integration and security tests do, and needs the engine the
          // fault suite restarts.
          name: 'release',
          include: ['test/release/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 600_000,
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
