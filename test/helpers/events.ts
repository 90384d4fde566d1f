/**
 * Helpers for ledger and policy tests: an in-memory ledger (validateEvent over an OverlayView),
 * snapshots of a node's observable state, and small builders for raw, possibly broken events.
 */
import { expect } from 'vitest';
import { canonicalJson, encodePublicKey, toBase64url } from '../../src/crypto/index.js';
import { DkmsError, type ErrorCode } from '../../src/errors.js';
import type { LedgerEvent, PolicyAddress, Subject } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { Replay } from '../../src/ledger/replay.js';
import { OverlayView, type DidRecord, type PolicyRecord, type SubjectRecord } from '../../src/ledger/state.js';
import { validateEvent, type Accepted } from '../../src/ledger/validate.js';
import type { PolicyHistory } from '../../src/policy/verify.js';

/** The ledger time every in-memory event gets (and a node whose clock is `FIXED_MS`). */
export const FIXED_MS = Date.UTC(2030, 0, 1);
export const FIXED_TIME = new Date(FIXED_MS).toISOString();

/** What fixtures need of a ledger: a node and a MemoryLedger both provide it. */
export interface Ledger {
  submit(raw: unknown): Promise<{ readonly subject: Subject }>;
  subject(subject: Subject): Promise<SubjectRecord | undefined>;
}

/** An in-memory ledger: validateEvent over an OverlayView, putting each accepted event. */
export class MemoryLedger implements Ledger {
  readonly view = new OverlayView({ subject: async () => undefined, eventAt: async () => undefined });
  readonly accepted: LedgerEvent[] = [];

  /** Validates without recording: what the ledger would say now. */
  validate(raw: unknown): Promise<Accepted> {
    return validateEvent(raw, this.view, { gseq: this.accepted.length, time: FIXED_TIME });
  }

  async submit(raw: unknown): Promise<Accepted> {
    const result = await this.validate(raw);
    this.view.put(result.record, result.event);
    this.accepted.push(result.event);
    return result;
  }

  subject(subject: Subject): Promise<SubjectRecord | undefined> {
    return this.view.subject(subject);
  }

  /** Every record, sorted by subject, as canonical JSON. */
  records(): string[] {
    return this.view
      .changed()
      .sort((a, b) => (a.subject < b.subject ? -1 : 1))
      .map((r) => canonicalJson(r));
  }
}

export async function policyRecord(ledger: Ledger, subject: Subject): Promise<PolicyRecord> {
  const record = await ledger.subject(subject);
  if (record?.kind !== 'policy') throw new Error(`no policy ${subject}`);
  return record;
}

export async function didRecord(ledger: Ledger, subject: Subject): Promise<DidRecord> {
  const record = await ledger.subject(subject);
  if (record?.kind !== 'did') throw new Error(`no DID ${subject}`);
  return record;
}

/** The code `fn` throws, or 'ACCEPTED'. Anything but a DkmsError is rethrown. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ACCEPTED';
  } catch (e) {
    if (e instanceof DkmsError) return e.code;
    throw e;
  }
}

/** The code a submission is refused with, or 'ACCEPTED'. Anything but a DkmsError is rethrown. */
export async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ACCEPTED';
  } catch (e) {
    if (e instanceof DkmsError) return e.code;
    throw e;
  }
}

export interface NodeSnapshot {
  readonly size: number;
  readonly root: string;
  readonly subjects: string;
}

/** What a refused event must leave as it was: the log size, the signed root, every record. */
export async function snapshot(node: LedgerNode): Promise<NodeSnapshot> {
  return { size: node.size, root: node.head().root, subjects: canonicalJson(await node.store.subjects()) };
}

/** Submits `raw`, expects it refused with `code`, and expects the node unchanged. */
export async function expectRefused(node: LedgerNode, raw: unknown, code: ErrorCode): Promise<void> {
  const before = await snapshot(node);
  expect(await outcome(node.submit(raw))).toBe(code);
  expect(await snapshot(node)).toEqual(before);
}

/** Like expectRefused, for fast-check predicates: true when refused with `code` and nothing changed. */
export async function refusedUnchanged(node: LedgerNode, raw: unknown, code: ErrorCode, label = ''): Promise<boolean> {
  const before = await snapshot(node);
  const got = await outcome(node.submit(raw));
  const after = await snapshot(node);
  if (got !== code) throw new Error(`${label}: expected ${code}, got ${got}`);
  return after.size === before.size && after.root === before.root && after.subjects === before.subjects;
}

/**
 * An Ed25519 public key of small order (the identity point): with node:crypto, the signature
 * (R = identity, S = 0) verifies under it for every message.
 */
export function smallOrderKey(): { key: string; sig: string } {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const sig = new Uint8Array(64);
  sig[0] = 1;
  return { key: encodePublicKey('ed25519', identity), sig: toBase64url(sig) };
}

/** A deep copy of JSON-like data. */
export const clone = <T>(value: T): T => structuredClone(value);

type Path = readonly (string | number)[];

function parentOf(root: unknown, path: Path): Record<string | number, unknown> {
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  return node;
}

/** A copy of `root` with the value at `path` replaced. */
export function setIn(root: unknown, path: Path, value: unknown): unknown {
  const copy = clone(root);
  parentOf(copy, path)[path[path.length - 1] as string | number] = value;
  return copy;
}

/** A copy of `root` without the object key at `path`. */
export function deleteIn(root: unknown, path: Path): unknown {
  const copy = clone(root);
  Reflect.deleteProperty(parentOf(copy, path), path[path.length - 1] as string | number);
  return copy;
}

/** The policy after each of its events, with their ledger times: what a client hands the verifier. */
export async function policyHistory(node: LedgerNode, policy: PolicyAddress): Promise<PolicyHistory> {
  const replay = new Replay();
  const history: { time: string; policy: PolicyRecord['policy'] }[] = [];
  for (const record of await node.history(policy)) {
    const accepted = await replay.apply(record);
    if (accepted.record.kind === 'policy' && accepted.subject === policy) history.push({ time: record.time, policy: accepted.record.policy });
  }
  return history;
}
