module.exports = { ...require('../../jest.preset.cjs'), displayName: 'user-data', rootDir: __dirname };
