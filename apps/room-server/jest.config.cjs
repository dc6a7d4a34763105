module.exports = { ...require('../../jest.preset.cjs'), displayName: 'room-server', rootDir: __dirname };
