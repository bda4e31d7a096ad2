// ESM all the way: the product depends on ESM-only packages (p-limit), so jest runs
// with --experimental-vm-modules and ts-jest in ESM mode. Type-checking is done once
// by `tsc --noEmit` in `npm test`, so ts-jest only transpiles (isolatedModules).
/** @type {import('jest').Config} */
export default {
  // node, plus a check that fails a file which leaves a child process running (test/support/leak-environment.cjs)
  testEnvironment: '<rootDir>/test/support/leak-environment.cjs',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  maxWorkers: 2,
};
