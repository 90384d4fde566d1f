import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Crash trials and CLI tests start many processes; two cores run two files at a time.
    maxWorkers: 2,
  },
});
