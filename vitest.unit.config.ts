import { defineConfig } from 'vitest/config';
import { useRamTmp } from './test/setup/ram-tmp.js';
import { UNIT_TESTS } from './test/suites.js';

useRamTmp();

/** `npm run test:unit`: the pure and property tests alone (test/suites.ts), no I/O but files. */
export default defineConfig({
  test: {
    include: [...UNIT_TESTS],
    setupFiles: ['test/setup/no-io.ts'],
    globalSetup: ['test/setup/ram-tmp.ts'],
    testTimeout: 60_000,
    maxWorkers: 2,
    // As in the full suite (vitest.config.ts): src/ and the packages load once per worker.
    isolate: false,
  },
});
