// Two projects: fast unit tests beside their subjects, and end-to-end tests under test/e2e that
// start real processes (gateway, upstreams, curl, bwrap) and so run one file at a time.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          // The fuzz targets' corpus replay runs with the unit tests: every target, every time.
          include: ['{gateway,ca,policies,identity,jail,cli}/**/*.test.ts', '*.test.ts', 'test/fuzz-corpus.test.ts', 'scripts/*.test.mjs'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
