// Lint rules. Besides the TypeScript recommendations, these keep each driver
// inside its own lib (ARCHITECTURE.md, rule 5): only libs/storage may import
// mongodb or node:sqlite, only libs/bus may import nats, only libs/cache ioredis.
import tseslint from 'typescript-eslint';

const drivers = {
  storage: ['mongodb', 'node:sqlite'],
  bus: ['nats'],
  cache: ['ioredis'],
};
const allDrivers = Object.values(drivers).flat();

function restrictDriversExcept(own) {
  const banned = allDrivers.filter((d) => !own.includes(d));
  return {
    'no-restricted-imports': ['error', {
      paths: banned.map((name) => ({ name, message: 'Database, bus and cache drivers stay inside their own lib (ARCHITECTURE.md rule 5).' })),
    }],
  };
}

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'dist/**', '.nx/**', 'coverage/**', '**/*.cjs', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      ...restrictDriversExcept([]),
    },
  },
  ...Object.entries(drivers).map(([lib, own]) => ({
    files: [`libs/${lib}/**/*.ts`],
    rules: restrictDriversExcept(own),
  })),
);
