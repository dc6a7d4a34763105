module.exports = { ...require('../../jest.preset.cjs'), displayName: 'key-server', rootDir: __dirname };
