module.exports = { ...require('../../jest.preset.cjs'), displayName: 'e2ee', rootDir: __dirname };
