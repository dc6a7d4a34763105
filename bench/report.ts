import { cpus, totalmem, platform, release } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

/** One line naming the machine, for BENCHMARKS.md. */
export function machineDescription(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Node ${process.version}`;
}

function format(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(value >= 10 ? 1 : 3);
}

/**
 * Writes (or replaces) one section of BENCHMARKS.md: a table of results with
 * the date and the machine, so figures from different suites live side by side.
 */
export function writeBenchmarkSection(section: string, command: string, results: BenchResult[]): string {
  const path = join(__dirname, '..', 'BENCHMARKS.md');
  // The source tree's file, also when run from dist/bench.
  const target = existsSync(join(__dirname, '..', 'package.json')) ? path : join(__dirname, '..', '..', 'BENCHMARKS.md');
  const header = '# Benchmarks\n\nFigures measured by the scripts under `bench/`; each section says when, on what, and how to run it again.\n';
  const existing = existsSync(target) ? readFileSync(target, 'utf8') : header;
  const body = [
    `## ${section}`,
    '',
    `Run: \`${command}\` on ${new Date().toISOString().slice(0, 10)}; machine: ${machineDescription()}.`,
    '',
    '| measurement | value | unit | note |',
    '|---|---:|---|---|',
    ...results.map((r) => `| ${r.name} | ${format(r.value)} | ${r.unit} | ${r.note ?? ''} |`),
    '',
  ].join('\n');
  const pattern = new RegExp(`## ${section.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n[\\s\\S]*?(?=\\n## |$)`);
  const next = pattern.test(existing) ? existing.replace(pattern, body.trimEnd() + '\n') : `${existing.trimEnd()}\n\n${body}`;
  writeFileSync(target, next.trimEnd() + '\n');
  return body;
}
