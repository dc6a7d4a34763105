// End-to-end suites: real processes (built to dist/ once by the global setup)
// driven over HTTP by matrix-js-sdk, in embedded and cluster mode.
module.exports = {
  ...require('../jest.preset.cjs'),
  displayName: 'e2e',
  rootDir: __dirname,
  globalSetup: '<rootDir>/support/global-setup.cjs',
  testTimeout: 120_000, // for `jest -c e2e/jest.config.cjs`; the root run uses setup-timeouts.ts
  setupFilesAfterEnv: ['<rootDir>/support/setup-timeouts.ts'],
};
