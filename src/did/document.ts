/**
 * DID documents (W3C DID Core), derived at resolution from ledger state: the verification
 * methods are the Ed25519 keys of the controlling policy's agents that hold PROVE, the key
 * agreement keys are those agents' X25519 keys, and the services come from the DID's own
 * events. Granting or revoking an agent thus changes every DID of the owner at once.
 */
import { FLAGS, hasFlag } from '../policy/flags.js';
import type { DidRecord, PolicyRecord } from '../ledger/state.js';

export interface VerificationMethod {
  readonly id: string;
  readonly type: 'Ed25519VerificationKey2020' | 'X25519KeyAgreementKey2020';
  readonly controller: string;
  readonly publicKeyMultibase: string;
}

export interface DidDocument {
  readonly '@context': readonly string[];
  readonly id: string;
  readonly controller: string;
  readonly verificationMethod: readonly VerificationMethod[];
  readonly authentication: readonly string[];
  readonly assertionMethod: readonly string[];
  readonly keyAgreement: readonly string[];
  readonly service: readonly { id: string; type: string; serviceEndpoint: string }[];
}

export interface DidDocumentMetadata {
  readonly created: string;
  readonly updated: string;
  readonly deactivated: boolean;
  /** Id of the DID's latest event. */
  readonly versionId: string;
  /** The policy whose agents control the DID. */
  readonly controller: string;
}

export const DID_CONTEXT = [
  'https://www.w3.org/ns/did/v1',
  'https://w3id.org/security/suites/ed25519-2020/v1',
  'https://w3id.org/security/suites/x25519-2020/v1',
] as const;

/** The document of `did` under its controlling policy. A deactivated DID has no keys and no services. */
export function didDocument(did: DidRecord, policy: PolicyRecord): DidDocument {
  const provers = did.deactivated ? [] : policy.policy.agents.filter((a) => hasFlag(a.flags, FLAGS.PROVE));
  const signing: VerificationMethod[] = provers.map((a) => ({
    id: `${did.subject}#${a.key}`,
    type: 'Ed25519VerificationKey2020',
    controller: did.subject,
    publicKeyMultibase: a.key,
  }));
  const agreement: VerificationMethod[] = provers.flatMap((a) =>
    a.kx === undefined ? [] : [{ id: `${did.subject}#${a.kx}`, type: 'X25519KeyAgreementKey2020' as const, controller: did.subject, publicKeyMultibase: a.kx }],
  );
  const signingIds = signing.map((m) => m.id);
  return {
    '@context': DID_CONTEXT,
    id: did.subject,
    controller: did.subject,
    verificationMethod: [...signing, ...agreement],
    authentication: signingIds,
    assertionMethod: signingIds,
    keyAgreement: agreement.map((m) => m.id),
    service: did.deactivated ? [] : did.services.map((s) => ({ id: `${did.subject}${s.id}`, type: s.type, serviceEndpoint: s.serviceEndpoint })),
  };
}

export function didDocumentMetadata(did: DidRecord): DidDocumentMetadata {
  return { created: did.created.time, updated: did.updated.time, deactivated: did.deactivated, versionId: did.head, controller: did.controller };
}
