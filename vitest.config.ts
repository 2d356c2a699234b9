import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Service logs of the run go to .tmp/test-logs and are searched for leaked secrets at the end.
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each create their own database; two workers keep the 2-core machine responsive.
    // (vitest 5 has no `poolOptions`/`minForks`: the worker cap is the top-level `maxWorkers`.)
    pool: "forks",
    maxWorkers: 2
  }
})
