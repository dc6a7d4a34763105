module.exports = { ...require('../../jest.preset.cjs'), displayName: 'homeserver', rootDir: __dirname };
