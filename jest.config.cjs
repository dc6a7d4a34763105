// One Jest run over every project (what `npm test` and CI use); `nx test <project>`
// runs a single project with the same settings.
const { readdirSync, existsSync } = require('node:fs');
const path = require('node:path');

const projects = [];
for (const group of ['libs', 'apps']) {
  for (const name of readdirSync(path.join(__dirname, group))) {
    const config = path.join(__dirname, group, name, 'jest.config.cjs');
    if (existsSync(config)) projects.push(config);
  }
}
if (existsSync(path.join(__dirname, 'e2e', 'jest.config.cjs'))) projects.push(path.join(__dirname, 'e2e', 'jest.config.cjs'));

module.exports = { projects };
