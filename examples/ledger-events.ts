/**
 * The ledger without agents: keys in a wallet, a policy and a DID built and signed by hand,
 * submitted to a ledger node started in this process, then read back verified, through the
 * ledger client and through the `did-resolver` package. Then a second key is granted and the
 * DID document follows the policy.
 *
 * Run it after building the package: `tsc` it against the package's types, then `node` it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Signer } from 'dkms/ledger';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'did-resolver';
import { LedgerClient, isDkmsError, startLedger } from 'dkms';
import { FLAGS, didCreate, nextEvent, policyCreate, recoveryKeyDigest, signEvent, type PolicyAddress } from 'dkms/ledger';
import { getResolver } from 'dkms/resolver';
import { Wallet, passphraseSecret } from 'dkms/wallet';

const home = mkdtempSync(join(tmpdir(), 'dkms-ledger-events-'));
const ledger = await startLedger(join(home, 'ledger-node'), { port: 0 });
const wallet = await Wallet.create(join(home, 'wallet.db'), passphraseSecret('a long passphrase'), { kdfTier: 'interactive' });
try {
  // Keys: `main` signs events and proves, `kx` agrees keys for messaging, `recovery` is only committed to.
  const main = wallet.createKey('main', 'ed25519');
  const kx = wallet.createKey('kx', 'x25519');
  const recovery = wallet.createKey('recovery', 'ed25519');
  const signer: Signer = wallet.signer('main');

  const client = new LedgerClient({ url: ledger.url, trustedKeys: [ledger.node.key] });
  const policyEvent = signEvent(
    policyCreate([{ key: main.publicKey, kx: kx.publicKey, flags: FLAGS.ADMIN | FLAGS.PROVE }], {
      digests: [recoveryKeyDigest(recovery.publicKey)],
      threshold: 1,
    }),
    [signer],
  );
  const policy = (await client.submit(policyEvent)).subject as PolicyAddress;
  const did = (await client.submit(signEvent(didCreate(policy, [{ id: '#home', type: 'LinkedDomains', serviceEndpoint: 'https://alice.example/' }]), [signer])))
    .subject;
  console.log(`policy: ${policy}`);
  console.log(`did: ${did}`);

  // Any did-resolver user can resolve did:dkms: the driver verifies like the client does.
  const resolver = new Resolver(getResolver({ ledger: client }));
  const before = await resolver.resolve(did);
  console.log(`resolved: ${before.didDocument?.id ?? 'nothing'}, keys: ${before.didDocument?.verificationMethod?.length ?? 0}`);

  // Grant a phone's key PROVE: the DID document lists it at once, no change to the DID itself.
  const phone = wallet.createKey('phone', 'ed25519');
  const current = (await client.resolvePolicy(policy)).record;
  await client.submit(signEvent(nextEvent('policy.grant', policy, current, { agent: { key: phone.publicKey, flags: FLAGS.PROVE } }), [signer]));
  const after = await resolver.resolve(did);
  console.log(`after the grant, keys: ${after.didDocument?.verificationMethod?.length ?? 0}`);

  // The ledger refuses an event not signed by an authorized agent, with a stable code.
  const stranger: Signer = wallet.signer('phone');
  const latest = (await client.resolvePolicy(policy)).record;
  try {
    await client.submit(signEvent(nextEvent('policy.revoke', policy, latest, { key: main.publicKey }), [stranger]));
    console.log('refused: no');
  } catch (e) {
    console.log(`refused: ${isDkmsError(e) ? e.code : String(e)}`);
  }
} finally {
  wallet.close();
  await ledger.close();
  rmSync(home, { recursive: true, force: true });
}
