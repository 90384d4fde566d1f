/**
 * A node and a witness as separate `dkms` processes: the node accepts the witness's key, the
 * witness follows the node, and a client requiring both signers verifies the head.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { background, dkms, json, killBackground } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

afterEach(killBackground);

describe('dkms ledger witness', () => {
  it('follows a node started with --accept-witness, and ledger status --quorum 2 shows its cosignature', async () => {
    const witnessHome = tempDir();
    const shown = json<{ key: string; node: null; last: null; evidence: [] }>(
      await dkms(['ledger', 'witness', '--show', '--json'], { DKMS_HOME: witnessHome }),
    );
    expect(shown).toMatchObject({ node: null, last: null, evidence: [] });
    expect(shown.key).toMatch(/^z6Mk/);

    const node = background(['ledger', 'serve', '--port', '0', '--accept-witness', shown.key, '--head-interval', '1', '--json'], { DKMS_HOME: tempDir() });
    const served = JSON.parse(await node.nextLine()) as { ledger: string; key: string };
    const witness = background(['ledger', 'witness', '--ledger', served.ledger, '--node-key', served.key, '--port', '0', '--interval', '100', '--json'], {
      DKMS_HOME: witnessHome,
    });
    const started = JSON.parse(await witness.nextLine()) as { witness: string; key: string; node: string };
    expect(started).toMatchObject({ key: shown.key, node: served.key });
    expect(started.witness).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const status = await dkms(
      ['ledger', 'status', '--ledger', served.ledger, '--node-key', served.key, '--witness-key', shown.key, '--quorum', '2', '--json'],
      { DKMS_HOME: tempDir() },
    );
    expect(status.code, status.stderr).toBe(0);
    const head = json<{ size: number; verified: boolean; cosignatures: { key: string }[] }>(status);
    expect(head).toMatchObject({ size: 0, verified: true });
    expect(head.cosignatures.map((c) => c.key)).toEqual([shown.key]);

    // Its state can be read while it runs.
    const state = json(await dkms(['ledger', 'witness', '--show', '--json'], { DKMS_HOME: witnessHome }));
    expect(state).toMatchObject({ key: shown.key, node: served.key, last: { size: 0, key: served.key }, evidence: [] });

    const answer = (await (await fetch(`${started.witness}/v1/witness`)).json()) as Record<string, unknown>;
    expect(answer).toMatchObject({ key: shown.key, node: served.key, evidence: [] });
  });

  it('needs the one node key it follows', async () => {
    const run = await dkms(['ledger', 'witness', '--ledger', 'http://127.0.0.1:1', '--port', '0', '--json'], { DKMS_HOME: tempDir() });
    expect(run.code).toBe(2);
    expect(json<{ error: { code: string } }>(run).error.code).toBe('BAD_INPUT');
  });
});
