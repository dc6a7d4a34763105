// Jest reads `testTimeout` only from the top-level config, not from a project
// of a multi-project run (jest.config.cjs at the root), so the e2e project sets
// its own here: starting a cluster (FerretDB, NATS, Redis, seven services) on a
// busy two-core machine can take far longer than the 5 s default.
jest.setTimeout(120_000);
