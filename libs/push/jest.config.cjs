module.exports = { ...require('../../jest.preset.cjs'), displayName: 'push', rootDir: __dirname };
