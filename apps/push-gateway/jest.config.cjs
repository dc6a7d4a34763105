module.exports = { ...require('../../jest.preset.cjs'), displayName: 'push-gateway', rootDir: __dirname };
