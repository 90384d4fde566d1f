import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ed25519Generate, ed25519Sign } from '../../src/crypto/index.js';
import { VerifyPool } from '../../src/ledger/verify-pool.js';

describe('signature checks on worker threads', () => {
  it('returns the same answers as checking on the main thread, in order', async () => {
    const pool = new VerifyPool(2);
    const pair = ed25519Generate();
    const jobs = Array.from({ length: 60 }, (_, i) => {
      const message = new Uint8Array([i]);
      const signature = ed25519Sign(pair.privateKey, message);
      if (i % 3 === 0) signature[0] = (signature[0] ?? 0) ^ 1;
      return { key: pair.publicKey, message, signature };
    });
    expect(await pool.verify(jobs)).toEqual(jobs.map((_, i) => i % 3 !== 0));
    await pool.close();
  });

  it('keeps the process alive while workers are busy, and lets it exit when idle', () => {
    // Workers are unreferenced when idle; a check in flight must still be awaited, not dropped.
    const script = `
      import { VerifyPool } from ${JSON.stringify(new URL('../../dist/src/ledger/verify-pool.js', import.meta.url).href)};
      import { ed25519Generate, ed25519Sign } from ${JSON.stringify(new URL('../../dist/src/crypto/index.js', import.meta.url).href)};
      const pair = ed25519Generate();
      const message = new Uint8Array(8);
      const results = await new VerifyPool(2).verify(Array.from({ length: 40 }, () => ({ key: pair.publicKey, message, signature: ed25519Sign(pair.privateKey, message) })));
      process.stdout.write(String(results.filter(Boolean).length));`;
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })).toBe('40');
  });
});
