module.exports = { ...require('../../jest.preset.cjs'), displayName: 'federation-outbound', rootDir: __dirname };
