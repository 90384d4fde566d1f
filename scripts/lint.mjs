/**
 * `npm run lint`: eslint, the layering (dependency-cruiser) and formatting (Prettier), run at
 * the same time (each is one process bound to one core). Each one's output is printed once it
 * ends; the lint fails if any of them does.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const CHECKS = [
  ['eslint', ['.']],
  ['depcruise', ['src', 'examples', 'web', '--config', '.dependency-cruiser.cjs']],
  ['prettier', ['--check', '.', '--log-level', 'warn']],
];

function run([name, args]) {
  return new Promise((resolve) => {
    const child = spawn(join('node_modules', '.bin', name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
    child.on('error', (e) => resolve({ name, ok: false, output: `${output}${e.message}\n` }));
    child.on('close', (code) => resolve({ name, ok: code === 0, output }));
  });
}

const results = await Promise.all(CHECKS.map(run));
for (const { name, ok, output } of results) {
  if (output.trim() !== '') process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
  if (!ok) process.stderr.write(`lint: ${name} failed\n`);
}
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
