/**
 * A DID's life on a real ledger node, for the resolver tests: a laptop creates a policy and a
 * DID, moves the DID's agency, grants a phone PROVE, then creates a second DID and deactivates
 * it. One event a minute from ten minutes ago, so that versionTime can fall between any two;
 * then the node's clock is the real one again and it signs a current head.
 */
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, EventId, PolicyAddress, Subject } from '../../src/ledger/events.js';
import type { LedgerNode, Receipt } from '../../src/ledger/node.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { commitment, testKey, type TestKey } from '../helpers/ledger.js';
import { startLedger, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import type { LedgerServerOptions } from '../../src/server/ledger-api.js';

export const MINUTE = 60_000;
export const iso = (ms: number): string => new Date(ms).toISOString();

export const AGENCY_BEFORE = 'http://127.0.0.1:9000/';
export const AGENCY_AFTER = 'http://127.0.0.1:9100/';

export interface DidStory {
  readonly ledger: RunningLedger;
  readonly policy: PolicyAddress;
  /** Created at T0+1m (agency before), updated at T0+2m (agency after); the phone is granted at T0+3m. */
  readonly did: Did;
  /** Created at T0+4m, deactivated at T0+5m. */
  readonly gone: Did;
  readonly laptop: TestKey;
  readonly phone: TestKey;
  /** When the story began: event n was accepted at t0 + n minutes. */
  readonly t0: number;
  /** Ids of the events, in the order above: policy, did, update, grant, gone, deactivate. */
  readonly ids: readonly EventId[];
}

async function latest(node: LedgerNode, subject: Subject): Promise<{ seq: number; head: string }> {
  const record = await node.subject(subject);
  if (record === undefined) throw new Error(`${subject} missing`);
  return record;
}

export async function didStory(server: LedgerServerOptions = {}): Promise<DidStory> {
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 10 * MINUTE;
  let fake: number | undefined = t0;
  const ledger = await startLedger(tempDir(), { node: { now: () => fake ?? Date.now() }, server });
  const { node } = ledger;
  const laptop = testKey();
  const phone = testKey();
  const receipts: Receipt[] = [];
  const submit = async (event: unknown): Promise<Receipt> => {
    const receipt = await node.submit(event);
    receipts.push(receipt);
    fake = (fake ?? Date.now()) + MINUTE;
    return receipt;
  };
  const policy = (await submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]))).subject as PolicyAddress;
  const did = (await submit(signEvent(didCreate(policy, [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: AGENCY_BEFORE }]), [laptop])))
    .subject as Did;
  await submit(
    signEvent(
      nextEvent('did.update', did, await latest(node, did), { services: [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: AGENCY_AFTER }] }),
      [laptop],
    ),
  );
  await submit(signEvent(nextEvent('policy.grant', policy, await latest(node, policy), { agent: phone.agent(FLAGS.PROVE) }), [laptop]));
  const gone = (await submit(signEvent(didCreate(policy), [laptop]))).subject as Did;
  await submit(signEvent(nextEvent('did.deactivate', gone, await latest(node, gone), {}), [laptop]));
  fake = undefined;
  // The last head was signed minutes ago by the story's clock: sign a current one.
  await node.refresh();
  return { ledger, policy, did, gone, laptop, phone, t0, ids: receipts.map((r) => r.id as EventId) };
}

/** The Ed25519 keys of a document's verification methods. */
export const signingKeys = (doc: { verificationMethod?: readonly { type: string; publicKeyMultibase?: string }[] } | null): (string | undefined)[] =>
  (doc?.verificationMethod ?? []).filter((m) => m.type === 'Ed25519VerificationKey2020').map((m) => m.publicKeyMultibase);

/** The endpoints of a document's services. */
export const endpoints = (doc: { service?: readonly { serviceEndpoint: unknown }[] } | null): unknown[] => (doc?.service ?? []).map((s) => s.serviceEndpoint);
