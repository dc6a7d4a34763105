const preset = require('../../jest.preset.cjs');

// The spans test exports over OTLP: @opentelemetry/otlp-exporter-base loads
// node:http with a dynamic import(), which Jest's CommonJS runtime refuses;
// compiling it with the preset's transform turns it into require() (as libs/telemetry does).
const transformIgnorePatterns = preset.transformIgnorePatterns.map((pattern) =>
  pattern.replace('/node_modules/(?!(', '/node_modules/(?!(@opentelemetry/otlp-exporter-base|'),
);

module.exports = { ...preset, transformIgnorePatterns, displayName: 'federation-outbound', rootDir: __dirname };
