// Lint (`npm run lint`): ESLint's and typescript-eslint's recommended rules, and
// the two type-aware promise rules, with type information from the tsconfig
// nearest each file (tsconfig.json for agent/ and shared/, test/tsconfig.json
// for the tests). The type-checked recommended set is left out for now: it
// reports some 430 findings here, mostly no-unsafe-* on JSON and require-await.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // test/fixtures: data (repositories and fake CLIs a test copies or runs), not code of ours to lint.
  { ignores: ['dist/**', 'node_modules/**', 'test/fixtures/**'] },
  {
    files: ['agent/src/**/*.ts', 'shared/src/**/*.ts', 'test/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // A leading underscore marks a parameter or binding unused on purpose
      // (an interface's argument a backend ignores, a key dropped from a rest copy).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Rejecting control characters is what the validators' regular expressions
      // are for (agent/src/workspace/validate.ts, agent/src/cache/ref.ts).
      'no-control-regex': 'off',
    },
  },
  {
    // The fakes in plain JavaScript (test/fakes/lima, test/fakes/cloud-hypervisor): Node scripts, no types.
    files: ['test/fakes/**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      globals: Object.fromEntries(
        ['process', 'Buffer', 'console', 'URL', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'].map((g) => [g, 'readonly']),
      ),
    },
  },
);
