module.exports = { ...require('../../jest.preset.cjs'), displayName: 'rooms', rootDir: __dirname };
