import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, stopChild } from '@atrium/test-servers';

export const REPO_ROOT = repoRoot();

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** Everything it wrote, for diagnosing a failed start. */
  output(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** Starts a built Atrium entry point (dist/apps/<app>/src/main.js) as a real process. */
export function startNodeProcess(name: string, script: string, args: string[], env: NodeJS.ProcessEnv): ManagedProcess {
  const child = spawn(process.execPath, [join(REPO_ROOT, script), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  return {
    name,
    child,
    output: () => output,
    alive: () => !exited,
    stop: () => stopChild(child),
  };
}
