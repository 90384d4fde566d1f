/**
 * An edge agent's state, kept as items in its own wallet (so it is encrypted at rest and goes
 * into the wallet's export): its profile, the owner's link secret, its view of the owner's
 * agents, pending invitations, connections, received messages and approvals, and the ids of
 * messages already seen (replay protection).
 */
import { z } from 'zod';
import { fromUtf8, utf8 } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import type { Wallet, WalletItem } from '../wallet/index.js';

/** Which part keeps each wallet category (registerCategories). */
const owners = new Map<string, string>();

/**
 * Each part that keeps records in an agent's wallet names its categories here, once: a category
 * belongs to one part, so that two parts never read each other's records as their own.
 */
export function registerCategories<const T extends Record<string, string>>(part: string, categories: T): T {
  for (const category of Object.values(categories)) {
    const owner = owners.get(category);
    if (owner !== undefined && owner !== part) throw new Error(`wallet category ${category} already belongs to ${owner}`);
    owners.set(category, part);
  }
  return categories;
}

/** The part that registered `category`, if any. */
export function categoryOwner(category: string): string | undefined {
  return owners.get(category);
}

/** The edge agent's own records. */
export const CATEGORIES = registerCategories('agent', {
  agent: 'agent.self',
  agents: 'agent.agents',
  invitation: 'agent.invitation',
  connectionInvitation: 'agent.connection-invitation',
  connection: 'agent.connection',
  inbox: 'agent.inbox',
  approval: 'agent.approval',
  request: 'agent.request',
  seen: 'agent.seen',
});

export const AGENT_SIGN_KEY = 'agent-sign';
export const AGENT_KX_KEY = 'agent-kx';
export const PROVISIONAL_RECOVERY_KEY = 'recovery-provisional';

export const CloudSchema = z.object({
  agency: z.string().url(),
  id: z.string(),
  key: z.string(),
  kx: z.string(),
  endpoint: z.string().url(),
  routingKey: z.string(),
  did: z.string(),
});
export type Cloud = z.infer<typeof CloudSchema>;

export const ProfileSchema = z.object({
  v: z.literal(1),
  /** This device's label, as the owner's other devices list it. */
  label: z.string().max(64),
  /** The name other owners see for this owner (`dkms agent name`); this device's label when absent. */
  name: z.string().max(64).optional(),
  policy: z.string(),
  did: z.string().optional(),
  ledger: z.string().url(),
  key: z.string(),
  kx: z.string(),
  cloud: CloudSchema.optional(),
  created: z.string(),
});
export type Profile = z.infer<typeof ProfileSchema>;

/** The name other owners see for the owner of `profile`: the one chosen, else this device's label. */
export const nameForPeers = (profile: Profile): string => profile.name ?? profile.label;

export const KnownAgentSchema = z.object({ key: z.string(), kx: z.string().optional(), flags: z.number().int(), label: z.string().max(64).optional() });
export type KnownAgent = z.infer<typeof KnownAgentSchema>;
export const AgentViewSchema = z.object({ policy: z.string(), asOf: z.string(), agents: z.array(KnownAgentSchema) });
export type AgentView = z.infer<typeof AgentViewSchema>;

/**
 * What an edge agent keeps its keys and records in: the operations of a {@link Wallet} that the agent and its protocols use.
 * A wallet is one; an object that keeps the keys elsewhere (a hardware token) and the records
 * in a wallet is another.
 */
export type AgentWallet = Pick<
  Wallet,
  | 'getKey'
  | 'listKeys'
  | 'createKey'
  | 'deleteKey'
  | 'signer'
  | 'agreementKey'
  | 'get'
  | 'find'
  | 'put'
  | 'update'
  | 'delete'
  | 'transaction'
  | 'changes'
  | 'export'
  | 'merge'
>;

/** Typed JSON items over the wallet's items API. */
export class AgentStore {
  readonly wallet: AgentWallet;

  constructor(wallet: AgentWallet) {
    this.wallet = wallet;
  }

  read<T>(category: string, name: string, schema: z.ZodType<T>): T | undefined {
    // By its name: the wallet opens this one item, not every item of the category.
    let found: WalletItem;
    try {
      found = this.wallet.get(category, name);
    } catch (e) {
      // A name no item can have (empty, too long: a peer's id, say) is not there either.
      if (e instanceof DkmsError && (e.code === 'ITEM_NOT_FOUND' || e.code === 'BAD_INPUT')) return undefined;
      throw e;
    }
    const parsed = schema.safeParse(JSON.parse(fromUtf8(found.value)));
    if (!parsed.success) throw new DkmsError('WALLET_TAMPERED', `wallet item ${category}/${name} does not have the expected shape`);
    return parsed.data;
  }

  list<T>(category: string, schema: z.ZodType<T>): { name: string; value: T }[] {
    return this.wallet.find({ category }).map((item) => {
      const parsed = schema.safeParse(JSON.parse(fromUtf8(item.value)));
      if (!parsed.success) throw new DkmsError('WALLET_TAMPERED', `wallet item ${category}/${item.name} does not have the expected shape`);
      return { name: item.name, value: parsed.data };
    });
  }

  write(category: string, name: string, value: unknown, tags: Record<string, string> = {}): void {
    const bytes = utf8(JSON.stringify(value));
    this.wallet.transaction(() => {
      if (this.has(category, name)) this.wallet.update(category, name, { value: bytes, tags });
      else this.wallet.put(category, name, bytes, tags);
    });
  }

  has(category: string, name: string): boolean {
    try {
      this.wallet.get(category, name);
      return true;
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'ITEM_NOT_FOUND') return false;
      throw e;
    }
  }

  remove(category: string, name: string): void {
    if (this.has(category, name)) this.wallet.delete(category, name);
  }

  profile(): Profile {
    const profile = this.read(CATEGORIES.agent, 'profile', ProfileSchema);
    if (profile === undefined)
      throw new DkmsError(
        'AGENT_NOT_INITIALIZED',
        'this data directory has no agent yet: run `dkms agent init` (first device) or `dkms agent accept` (another device)',
      );
    return profile;
  }

  hasProfile(): boolean {
    return this.has(CATEGORIES.agent, 'profile');
  }

  saveProfile(profile: Profile): void {
    this.write(CATEGORIES.agent, 'profile', profile);
  }

  linkSecret(): Uint8Array | undefined {
    return this.has(CATEGORIES.agent, 'link-secret') ? this.wallet.get(CATEGORIES.agent, 'link-secret').value : undefined;
  }

  saveLinkSecret(secret: Uint8Array): void {
    this.wallet.transaction(() => {
      if (this.has(CATEGORIES.agent, 'link-secret')) this.wallet.update(CATEGORIES.agent, 'link-secret', { value: secret });
      else this.wallet.put(CATEGORIES.agent, 'link-secret', secret);
    });
  }

  agentView(): AgentView | undefined {
    return this.read(CATEGORIES.agents, 'view', AgentViewSchema);
  }

  saveAgentView(view: AgentView): void {
    this.write(CATEGORIES.agents, 'view', view);
  }
}
