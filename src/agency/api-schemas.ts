/**
 * The agency's HTTP API as data: every route's request and answers as zod schemas, used by the
 * server to validate requests, by the agency client to check answers, and to generate the
 * OpenAPI document served at `GET /openapi.json`.
 */
import { z } from 'zod';
import { JSON_MEDIA, OpenApiDocumentSchema, PROBLEM_MEDIA, ProblemSchema, intText, type ApiContract, type ResponseContract } from '../ledger/api-schemas.js';

/** The largest backup an agency stores. */
export const MAX_BACKUP_BYTES = 16 * 1024 * 1024;
/** Sponsors one cloud agent may name: every connection key of the most trustees a setup has (255), old and new during a change, two devices each. */
export const MAX_SPONSORS = 1024;
/** Messages per pickup or acknowledgement. */
export const MAX_PICKUP = 500;
/** The longest a pickup may wait for mail, seconds. */
export const MAX_WAIT_SECONDS = 30;
/** Media types an envelope may be posted as, the first preferred. */
export const ENVELOPE_TYPES = ['application/didcomm-encrypted+json', 'application/json'] as const;
/** Largest backup upload, bytes of JSON: the base64url data and room for the rest. */
export const BACKUP_BODY_LIMIT = Math.ceil((MAX_BACKUP_BYTES * 4) / 3) + 4096;

export const CloudAgentInfoSchema = z.object({
  id: z.string().min(1).max(64),
  policy: z.string().max(100),
  key: z.string().max(100),
  kx: z.string().max(100),
  endpoint: z.string().url().max(2048),
  routingKey: z.string().max(300),
  did: z.string().max(200),
});
export const BackupVersionSchema = z.object({ version: z.number().int().min(1), created: z.string().max(40), size: z.number().int().min(0) });
export const BackupIndexSchema = z.object({ policy: z.string().max(100), cloud: CloudAgentInfoSchema, versions: z.array(BackupVersionSchema) });
export const BackupDataSchema = z.object({ version: z.number().int().min(1), created: z.string().max(40), data: z.string() });
export const PickupSchema = z.object({ messages: z.array(z.object({ id: z.string(), received: z.string(), envelope: z.unknown() })) });
export const DeletedSchema = z.object({ deleted: z.number().int().min(0) });
export const GuestAllowanceSchema = z.object({ key: z.string(), allowed: z.string(), expires: z.string() });
export const SponsorsSchema = z.object({ sponsors: z.number().int().min(0) });
export const AcknowledgedSchema = z.object({ acknowledged: z.number().int().min(0) });
export const SyncSchema = z.object({
  routes: z.array(z.object({ agentKey: z.string(), kx: z.string().optional() })),
  added: z.array(z.string()),
  removed: z.array(z.string()),
});
export const AgencyHealthSchema = z.object({ status: z.literal('ok'), service: z.literal('agency') });
export const AcceptedSchema = z.object({ accepted: z.number().int().min(0) });

const multikey = z.string().regex(/^z[1-9A-HJ-NP-Za-km-z]{40,60}$/);
const locator = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{16,30}$/);
export const IdParamsSchema = z.object({ id: z.string().min(1).max(64) });
export const LocatorParamsSchema = z.object({ locator });
export const BackupParamsSchema = z.object({ id: z.string().min(1).max(64), locator });
export const RegisterBodySchema = z.strictObject({ policy: z.string().min(8).max(100) });
export const GuestBodySchema = z.strictObject({ cloud: multikey, key: multikey });
export const SponsorsBodySchema = z.strictObject({ keys: z.array(multikey).max(MAX_SPONSORS) });
export const BackupBodySchema = z.strictObject({ locator, data: z.string().min(1) });
export const AckBodySchema = z.strictObject({
  ids: z
    .array(z.string().regex(/^[0-9]{1,18}$/))
    .min(1)
    .max(MAX_PICKUP),
});
export const MailboxQuerySchema = z.strictObject({ limit: intText(1).optional(), wait: intText(0).optional() });
export const BackupDataQuerySchema = z.strictObject({ version: intText(1).optional() });

const json = (description: string, schema: z.ZodType): ResponseContract => ({ description, content: { [JSON_MEDIA]: schema } });
const problem = (description: string): ResponseContract => ({ description, content: { [PROBLEM_MEDIA]: ProblemSchema } });

const COMMON_PROBLEMS = {
  '400': problem('BAD_INPUT: the request is malformed'),
  '429': problem('RATE_LIMITED: too many requests from this address, or from this agent key'),
  '500': problem('INTERNAL: the server failed; its operator finds the cause in its error output'),
  default: problem('any other dkms error, by its code (docs/errors.md)'),
} as const;
/** The problems of a signed request besides the common ones. */
const SIGNED_PROBLEMS = {
  ...COMMON_PROBLEMS,
  '401': problem('REQUEST_UNAUTHORIZED: the signature, its time or its nonce does not check out'),
  '403': problem('the signing key may not make this request'),
} as const;

export const AGENCY_API: ApiContract = {
  title: 'dkms agency',
  description:
    "Cloud agents: mailboxes and routing for edge agents, guest allowances, backups. Requests marked signed carry the agent key's signature headers.",
  routes: [
    {
      method: 'GET',
      route: '/openapi.json',
      summary: 'This document',
      responses: { '200': json('the OpenAPI 3.1 document', OpenApiDocumentSchema), ...COMMON_PROBLEMS },
    },
    { method: 'GET', route: '/v1/health', summary: 'Liveness', responses: { '200': json('the agency is up', AgencyHealthSchema), ...COMMON_PROBLEMS } },
    {
      method: 'POST',
      route: '/v1/cloud-agents',
      summary: 'Provision (or return) the cloud agent of a policy; signed by an ADMIN agent of it',
      signed: true,
      body: RegisterBodySchema,
      responses: { '201': json('the cloud agent', CloudAgentInfoSchema), ...SIGNED_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/cloud-agents/:id',
      summary: "A cloud agent's public description",
      params: IdParamsSchema,
      responses: { '200': json('the cloud agent', CloudAgentInfoSchema), ...COMMON_PROBLEMS, '404': problem('CLOUD_AGENT_NOT_FOUND') },
    },
    {
      method: 'POST',
      route: '/v1/cloud-agents/:id/sync',
      summary: "Re-read the owner's policy and route to exactly its current agents",
      signed: true,
      params: IdParamsSchema,
      responses: { '200': json('the routes and what changed', SyncSchema), ...SIGNED_PROBLEMS, '404': problem('CLOUD_AGENT_NOT_FOUND') },
    },
    {
      method: 'POST',
      route: '/v1/cloud-agents/:id/backups',
      summary: 'Store a new backup version under a locator',
      signed: true,
      params: IdParamsSchema,
      body: BackupBodySchema,
      responses: { '201': json('the version stored', BackupVersionSchema), ...SIGNED_PROBLEMS, '413': problem('the backup is too large') },
    },
    {
      method: 'DELETE',
      route: '/v1/cloud-agents/:id/backups/:locator',
      summary: 'Delete every backup version under a locator',
      signed: true,
      params: BackupParamsSchema,
      responses: { '200': json('how many versions were deleted', DeletedSchema), ...SIGNED_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/backups/:locator',
      summary: 'Whose backups a locator names, and their versions',
      params: LocatorParamsSchema,
      responses: { '200': json('the index', BackupIndexSchema), ...COMMON_PROBLEMS, '404': problem('BACKUP_NOT_FOUND') },
    },
    {
      method: 'GET',
      route: '/v1/backups/:locator/data',
      summary: "One backup version's bytes (the newest by default); signed by a recovery key the owner's policy commits to",
      signed: true,
      params: LocatorParamsSchema,
      query: BackupDataQuerySchema,
      responses: { '200': json('the version, base64url', BackupDataSchema), ...SIGNED_PROBLEMS, '404': problem('BACKUP_NOT_FOUND') },
    },
    {
      method: 'POST',
      route: '/v1/guests',
      summary: 'Let a cloud agent take guest mail for a key for a day',
      signed: true,
      body: GuestBodySchema,
      responses: { '201': json('the allowance', GuestAllowanceSchema), ...SIGNED_PROBLEMS },
    },
    {
      method: 'PUT',
      route: '/v1/cloud-agents/:id/sponsors',
      summary: "Name the keys besides the owner's agents that may allow guests (replacing those named before)",
      signed: true,
      params: IdParamsSchema,
      body: SponsorsBodySchema,
      responses: { '200': json('how many sponsors are named', SponsorsSchema), ...SIGNED_PROBLEMS },
    },
    {
      method: 'POST',
      route: '/v1/inbound',
      summary: 'Deliver a DIDComm envelope (a forward to a cloud agent); the envelope speaks for itself, unsigned',
      body: z.looseObject({}),
      bodyTypes: ENVELOPE_TYPES,
      responses: { '202': json('how many messages were accepted', AcceptedSchema), ...COMMON_PROBLEMS, '413': problem('ENVELOPE_TOO_LARGE') },
    },
    {
      method: 'GET',
      route: '/v1/mailbox',
      summary: "The signing agent's waiting messages; with `wait`, held until one arrives",
      signed: true,
      query: MailboxQuerySchema,
      responses: { '200': json('the messages', PickupSchema), ...SIGNED_PROBLEMS },
    },
    {
      method: 'POST',
      route: '/v1/mailbox/ack',
      summary: 'Acknowledge (delete) picked-up messages',
      signed: true,
      body: AckBodySchema,
      responses: { '200': json('how many were acknowledged', AcknowledgedSchema), ...SIGNED_PROBLEMS },
    },
  ],
};
