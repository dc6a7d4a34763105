module.exports = { ...require('../../jest.preset.cjs'), displayName: 'federation-client', rootDir: __dirname };
