// Builds dist/ once before the end-to-end suites start the server processes.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async function globalSetup() {
  execFileSync(process.execPath, [path.join(__dirname, '..', '..', 'scripts', 'build.mjs')], { stdio: 'inherit' });
};
