const preset = require('../../jest.preset.cjs');

// @opentelemetry/otlp-exporter-base loads node:http with a dynamic import(),
// which Jest's CommonJS runtime refuses ("invoked without
// --experimental-vm-modules"); compiling it with the preset's transform turns
// the import() into require().
const transformIgnorePatterns = preset.transformIgnorePatterns.map((pattern) =>
  pattern.replace('/node_modules/(?!(', '/node_modules/(?!(@opentelemetry/otlp-exporter-base|'),
);

module.exports = { ...preset, transformIgnorePatterns, displayName: 'telemetry', rootDir: __dirname };
