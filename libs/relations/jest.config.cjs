module.exports = { ...require('../../jest.preset.cjs'), displayName: 'relations', rootDir: __dirname };
