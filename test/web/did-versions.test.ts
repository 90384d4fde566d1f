/**
 * The versions of a DID document (web/explorer/did-versions.ts) over a real history: two DIDs of
 * one owner on an in-process ledger node, verified into `history` and `steps` as the ledger
 * client does. A version is a distinct document, caused by the DID's own event or by its
 * policy's: granting PROVE adds a key to every DID of the owner; granting anything else, an
 * update that changes nothing, and what happens before the DID exists make none.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/index.js';
import { didDocument, type DidDocument } from '../../src/did/document.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, LedgerEvent, PolicyAddress, Service, Subject } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { verifiedRead } from '../helpers/replay.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { didVersions, type DidVersion } from '../../web/explorer/did-versions.js';
import { diffJson } from '../../web/explorer/diff.js';
import { codeOf, didRecord, policyRecord } from '../helpers/events.js';
import { commitment, nodeSigner, openNode, testKey, type TestKey } from '../helpers/ledger.js';

const { PROVE, PROVE_GRANT } = FLAGS;
const START = Date.UTC(2030, 0, 1);

const laptop = testKey(); // ADMIN
const phone = testKey(); // PROVE before the DID exists; revoked later
const tablet = testKey(); // PROVE_GRANT, later PROVE too
const watch = testKey(); // no flags at all
const late = testKey(); // PROVE after the first DID is deactivated

const agency: Service = { id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'https://agency.example/' };
const mail: Service = { id: '#mail', type: 'DIDCommMessaging', serviceEndpoint: 'https://mail.example/' };

/** The Ed25519 keys a document lists, and its service ids. */
const keysOf = (document: DidDocument) => document.verificationMethod.filter((m) => m.type === 'Ed25519VerificationKey2020').map((m) => m.publicKeyMultibase);
const servicesOf = (document: DidDocument) => document.service.map((s) => s.id.slice(s.id.indexOf('#')));
const sorted = (keys: TestKey[]) => keys.map((k) => k.multikey).sort();

describe('didVersions over a real history', () => {
  let t = START;
  let dir: string;
  let node: LedgerNode;
  let policy: PolicyAddress;
  let did: Did;
  let twin: Did;
  let read: Awaited<ReturnType<typeof verifiedRead>>;
  let versions: DidVersion[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkms-versions-'));
    node = await openNode(dir, nodeSigner(), { now: () => t, headIntervalMs: 0 });
    const submit = async (event: LedgerEvent) => {
      t += 1000;
      return (await node.submit(event)).subject;
    };
    const next = async (type: Parameters<typeof nextEvent>[0], subject: Subject, body: Record<string, unknown>) => {
      const latest = await node.subject(subject);
      if (latest === undefined) throw new Error(`${subject} missing`);
      return submit(signEvent(nextEvent(type, subject, latest, body), [laptop]));
    };

    policy = (await submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]))) as PolicyAddress; // 0
    await next('policy.grant', policy, { agent: phone.agent(PROVE) }); // 1: before the DID
    did = (await submit(signEvent(didCreate(policy, [agency]), [laptop]))) as Did; // 2: version 1
    await next('policy.grant', policy, { agent: tablet.agent(PROVE_GRANT) }); // 3: no PROVE, no version
    await next('policy.grant', policy, { agent: watch.agent(0) }); // 4: no flags, no version
    await next('policy.grant', policy, { agent: tablet.agent(PROVE | PROVE_GRANT) }); // 5: version 2
    await next('did.update', did, { services: [agency] }); // 6: the same services, no version
    await next('did.update', did, { services: [agency, mail] }); // 7: version 3
    twin = (await submit(signEvent(didCreate(policy, []), [laptop]))) as Did; // 8: the twin's version 1
    await next('policy.revoke', policy, { key: phone.multikey }); // 9: version 4, and the twin's 2
    await next('did.deactivate', did, {}); // 10: version 5
    await next('policy.grant', policy, { agent: late.agent(PROVE) }); // 11: the twin's 3 only

    read = await verifiedRead(await node.range(0, node.size));
    versions = didVersions(did, read.history, read.steps);
  });

  afterAll(async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one version per event that changed the document, numbered from 1, with its cause, in log order', () => {
    expect(versions.map((v) => [v.version, v.gseq, v.cause.type, v.cause.subject])).toEqual([
      [1, 2, 'did.create', did],
      [2, 5, 'policy.grant', policy],
      [3, 7, 'did.update', did],
      [4, 9, 'policy.revoke', policy],
      [5, 10, 'did.deactivate', did],
    ]);
    expect(versions.map((v) => v.time)).toEqual(versions.map((v) => read.history[v.gseq]?.time));
  });

  it('each version is the document at its event: keys of PROVE agents (granted before the DID too), its services', () => {
    expect(versions.map((v) => [keysOf(v.document).sort(), servicesOf(v.document)])).toEqual([
      [sorted([laptop, phone]), ['#agency']],
      [sorted([laptop, phone, tablet]), ['#agency']],
      [sorted([laptop, phone, tablet]), ['#agency', '#mail']],
      [sorted([laptop, tablet]), ['#agency', '#mail']],
      [[], []],
    ]);
  });

  it('no two versions in a row are the same document, and the last is the document the ledger resolves now', async () => {
    const texts = versions.map((v) => canonicalJson(v.document));
    texts.slice(1).forEach((text, i) => expect(text).not.toBe(texts[i]));
    const now = didDocument(await didRecord(node, did), await policyRecord(node, policy));
    expect(versions.at(-1)?.document).toEqual(now);
  });

  it("a policy change is a version of every DID of the owner; another DID's events are not", () => {
    const twins = didVersions(twin, read.history, read.steps);
    expect(twins.map((v) => [v.version, v.gseq, v.cause.type])).toEqual([
      [1, 8, 'did.create'],
      [2, 9, 'policy.revoke'],
      [3, 11, 'policy.grant'],
    ]);
    expect(keysOf(twins[2]?.document as DidDocument).sort()).toEqual(sorted([laptop, tablet, late]));
  });

  it("works on a read's own history (the DID's and its policy's events), and cut at a point in it", async () => {
    const own = await verifiedRead(read.history.filter((r) => r.gseq !== 8));
    expect(didVersions(did, own.history, own.steps)).toEqual(versions);
    expect(didVersions(did, read.history.slice(0, 8), read.steps)).toEqual(versions.slice(0, 3));
  });

  it('the diff between two versions shows what the event changed', () => {
    const [v1, v2] = versions;
    if (v1 === undefined || v2 === undefined) throw new Error('two versions expected');
    const changed = diffJson(v1.document, v2.document).filter((l) => l.op !== 'same');
    expect(changed.some((l) => l.op === 'added' && l.text.includes(tablet.multikey))).toBe(true);
    // Nothing was taken away: a removed line comes back with a comma, before an element added after it.
    const addedTexts = new Set(changed.filter((l) => l.op === 'added').map((l) => l.text));
    for (const line of changed.filter((l) => l.op === 'removed')) expect(addedTexts.has(`${line.text},`), line.text).toBe(true);
  });

  it('a DID it has no states of has no versions; a DID without its policy, or a history out of order, is refused', () => {
    expect(didVersions(`did:dkms:${'1'.repeat(44)}`, read.history, read.steps)).toEqual([]);
    const { [policy]: _dropped, ...withoutPolicy } = read.steps;
    expect(codeOf(() => didVersions(did, read.history, withoutPolicy))).toBe('BAD_INPUT');
    expect(codeOf(() => didVersions(did, [...read.history].reverse(), read.steps))).toBe('BAD_INPUT');
  });
});
