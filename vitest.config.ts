import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { useRamTmp } from './test/setup/ram-tmp.js';
import { slowRank } from './test/suites.js';

useRamTmp();

/**
 * The slowest files first (test/suites.ts), then the rest in vitest's own order (longest known
 * first, else largest first): two workers then end at about the same time.
 */
class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (file: TestSpecification): number => slowRank(file.moduleId) ?? Number.MAX_SAFE_INTEGER;
    // Array.prototype.sort is stable: files outside the list keep vitest's order among them.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Crash trials and CLI tests start many processes; two cores run two files at a time.
    maxWorkers: 2,
    // Each worker loads src/ and the packages once, not once per file (the suite spent about 30 s
    // of worker time importing, now under 10). Test files share no state: what one changes (a
    // spy, a fake clock, the environment) it puts back, and a shuffled order passes too.
    isolate: false,
    sequence: { sequencer: SlowestFirst },
    globalSetup: ['test/setup/ram-tmp.ts'],
  },
});
