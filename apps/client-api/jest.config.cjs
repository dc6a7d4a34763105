module.exports = { ...require('../../jest.preset.cjs'), displayName: 'client-api', rootDir: __dirname };
