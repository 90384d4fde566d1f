/**
 * The agency as seen by an agent (`dkms/agency`): {@link AgencyClient} talks to an agency over
 * HTTP, every call but posting an envelope signed by the agent's key ({@link signRequest});
 * {@link postEnvelope} delivers a DIDComm envelope to any agency's inbound endpoint. To run an
 * agency in this process, use `startAgency` from the package root (`dkms`).
 *
 * @example
 * ```ts
 * import { AgencyClient } from 'dkms/agency';
 *
 * const agency = new AgencyClient(agencyUrl, agent.signingKey());
 * const cloud = await agency.register(policyAddress);
 * const waiting = await agency.pickup(10, 5);
 * ```
 * @module dkms/agency
 */
export { AgencyClient, fetchBackupIndex, postEnvelope } from './agency-client.js';
export type { AgencyClientOptions, BackupIndex, BackupVersion, CloudAgentDescription, PickedUp } from './agency-client.js';
export { AUTH_HEADERS, signRequest } from './request-auth.js';
export type { Signer } from '../crypto/index.js';
export type { MailboxLimits } from './agency-store.js';
