import { main } from './cli';

// The embedded mode and the operator commands:
//   node dist/apps/homeserver/src/main.js [start] [--config atrium.yaml]
//   node dist/apps/homeserver/src/main.js generate-config --server-name example.org [--config F] [--data-dir D] ...
//   node dist/apps/homeserver/src/main.js register-user --user alice --password … [--admin] [--config F]
main(process.argv.slice(2)).catch((err: unknown) => {
  console.error((err as Error).message ?? err);
  process.exit(1);
});
