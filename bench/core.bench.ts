/**
 * `npm run bench:core`: the protocol core's hot paths (issue "Protocol core"):
 * Ed25519 sign/verify of a typical PDU beside the raw node:crypto ceiling,
 * content + reference hashing, and state resolution v2 on a synthetic room of
 * 10,000 state events with 500 conflicted. Results go to BENCHMARKS.md.
 */
import { benchSigning } from './core/signing';
import { benchStateRes } from './core/state-res';
import { writeBenchmarkSection, type BenchResult } from './report';

async function main(): Promise<void> {
  const results: BenchResult[] = [...(await benchSigning()), ...(await benchStateRes())];
  console.log(writeBenchmarkSection('Protocol core (libs/matrix)', 'npm run bench:core', results));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
