module.exports = { ...require('../../jest.preset.cjs'), displayName: 'federation-inbound', rootDir: __dirname };
