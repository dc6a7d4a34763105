// Shared Jest settings for every project. SWC compiles TypeScript (with Nest's
// decorator metadata) and the ESM-only matrix-js-sdk to CommonJS; type errors
// are caught by `npm run typecheck`, not by the test run.
const path = require('node:path');
const { compilerOptions } = require('./tsconfig.base.json');

const root = __dirname;
const moduleNameMapper = {};
for (const [alias, [target]] of Object.entries(compilerOptions.paths)) {
  moduleNameMapper[`^${alias}$`] = path.join(root, target);
}

// ESM-only packages that must be compiled for Jest's CommonJS runtime.
const esmPackages = [
  'matrix-js-sdk', 'matrix-events-sdk', 'matrix-widget-api', '@matrix-org', 'p-retry', 'is-network-error',
  'uuid', 'oidc-client-ts', 'jwt-decode', 'sdp-transform', 'another-json', 'unhomoglyph', 'bs58', 'base-x', 'content-type',
  'htmlparser2', 'domhandler', 'domutils', 'dom-serializer', 'domelementtype', 'entities',
];

module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.(t|j|mj)s$': [
      require.resolve('@swc/jest'),
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2023',
        },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  moduleNameMapper,
  testMatch: ['**/?(*.)+(spec|test).ts'],
};
