/**
 * First contact through the CLI: with no node key configured, the first one seen is trusted and
 * the user is told so (stderr, and `ledgerTrust` in --json output); keys given by --trust or by
 * trust.json are required, and a head signed by another key is refused.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { background, dkms, json, killBackground } from '../helpers/cli.js';
import { testKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

afterEach(killBackground);

describe('trusting a ledger node', () => {
  it('says when it trusts a node key on first use, and holds every later run to it; configured keys are required', async () => {
    const node = background(['ledger', 'serve', '--port', '0', '--json'], { DKMS_HOME: tempDir() });
    const served = JSON.parse(await node.nextLine()) as { ledger: string; key: string };
    const home = tempDir();
    const env = { DKMS_HOME: home, DKMS_LEDGER: served.ledger };

    const first = await dkms(['ledger', 'status', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain(`trusting ledger node key ${served.key} on first use`);
    expect(json(first)).toMatchObject({ key: served.key, ledgerTrust: { firstUse: true, nodeKey: served.key } });
    // Pinned: the next run is silent, and says nothing of first use.
    const second = await dkms(['ledger', 'status', '--json'], env);
    expect(second.stderr).toBe('');
    expect(json(second)).not.toHaveProperty('ledgerTrust');

    // A key given on the command line or in trust.json is required, and then nothing is said.
    const stranger = testKey().multikey;
    const refused = await dkms(['ledger', 'status', '--trust', stranger], { DKMS_HOME: tempDir(), DKMS_LEDGER: served.ledger });
    expect(refused.code).toBe(ERROR_CODES.LEDGER_BAD_HEAD.exit);
    const configured = tempDir();
    writeFileSync(join(configured, 'trust.json'), JSON.stringify({ nodeKeys: [served.key], maxHeadAgeSeconds: 30 }));
    const trusted = await dkms(['ledger', 'status', '--json'], { DKMS_HOME: configured, DKMS_LEDGER: served.ledger });
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(trusted.stderr).toBe('');
    // Taking the key out of trust.json takes it out of trust, whatever was seen before.
    writeFileSync(join(configured, 'trust.json'), JSON.stringify({ nodeKeys: [stranger] }));
    const pinnedElsewhere = await dkms(['ledger', 'status'], { DKMS_HOME: configured, DKMS_LEDGER: served.ledger });
    expect(pinnedElsewhere.code).toBe(ERROR_CODES.LEDGER_BAD_HEAD.exit);

    // Bad settings are refused before anything is asked.
    writeFileSync(join(configured, 'trust.json'), JSON.stringify({ nodeKeys: [served.key], quorum: 0 }));
    expect((await dkms(['ledger', 'status'], { DKMS_HOME: configured, DKMS_LEDGER: served.ledger })).code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect((await dkms(['ledger', 'status', '--max-head-age', '0'], env)).code).toBe(ERROR_CODES.BAD_INPUT.exit);
    // An empty DKMS_LEDGER means the default, not a URL of its own.
    const empty = await dkms(['ledger', 'status', '--ledger', served.ledger], { DKMS_HOME: home, DKMS_LEDGER: '' });
    expect(empty.code, empty.stderr).toBe(0);
  });
});
