module.exports = { ...require('../../jest.preset.cjs'), displayName: 'media-repo', rootDir: __dirname };
