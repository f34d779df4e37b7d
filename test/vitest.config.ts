import { defineConfig } from 'vitest/config';

// Unit tests run alone and fast (`npm run test:unit`); integration tests use the
// real Docker engine, registry and devcontainers CLI brought up by
// test/testbed/up.sh, so they run one file at a time on this 2-core machine.
export default defineConfig({
  test: {
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
    ],
  },
});
