module.exports = { ...require('../../jest.preset.cjs'), displayName: 'matrix', rootDir: __dirname };
