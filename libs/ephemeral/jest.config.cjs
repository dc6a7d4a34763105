module.exports = { ...require('../../jest.preset.cjs'), displayName: 'ephemeral', rootDir: __dirname };
