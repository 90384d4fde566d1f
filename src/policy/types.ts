/** The shapes of a policy: its agents, its rules, its recovery commitment, and its changes. */
export interface Agent {
  /** Ed25519 signing key, multibase (`z6Mk…`). */
  readonly key: string;
  /** X25519 key-agreement key, multibase (`z6LS…`), if the agent has one. */
  readonly kx?: string;
  readonly flags: number;
}

/** How many distinct authorized agents must sign each kind of change. */
export interface Rules {
  readonly grant: number;
  readonly revoke: number;
  readonly rules: number;
  readonly did: number;
}

export const DEFAULT_RULES: Rules = { grant: 1, revoke: 1, rules: 1, did: 1 };
export const RULE_NAMES = ['grant', 'revoke', 'rules', 'did'] as const;

/** Digests of the next recovery keys, and how many of them must sign `policy.recover`. */
export interface RecoveryCommitment {
  readonly digests: readonly string[];
  readonly threshold: number;
  /**
   * Seconds a `policy.recover` by these keys waits, by ledger time, before it takes effect;
   * during them enough ADMIN agents may cancel it. Absent or 0: it takes effect at once.
   */
  readonly delay?: number;
}

/** A delayed recovery, accepted and waiting: it takes effect with `policy.complete` from `until`. */
export interface PendingRecovery {
  /** Ledger time of the `policy.recover`, and the earliest ledger time it may complete. */
  readonly since: string;
  readonly until: string;
  readonly next: RecoveryCommitment;
  readonly agents?: readonly Agent[];
  readonly rules?: Rules;
  /** Digests of the recovery keys that signed it. */
  readonly revealed: readonly string[];
  /** A delayed recovery waiting for its time, if any. */
  readonly pending?: PendingRecovery;
}

export type PolicyChange =
  | { readonly type: 'policy.create'; readonly agents: readonly Agent[]; readonly rules?: Partial<Rules>; readonly recovery: RecoveryCommitment }
  | { readonly type: 'policy.grant'; readonly agent: Agent }
  | { readonly type: 'policy.revoke'; readonly key: string }
  | { readonly type: 'policy.rules'; readonly rules: Rules }
  | { readonly type: 'policy.recover'; readonly next: RecoveryCommitment; readonly agents?: readonly Agent[]; readonly rules?: Rules }
  | { readonly type: 'policy.cancel' }
  | { readonly type: 'policy.complete' };

/** What a policy says at one moment. Plain JSON, agents sorted by key, so it compares canonically. */
export interface PolicyRules {
  readonly agents: readonly Agent[];
  readonly rules: Rules;
  readonly recovery: RecoveryCommitment;
  /** Digests of recovery keys already revealed by a `policy.recover`; never usable again. */
  readonly revealed: readonly string[];
  /** A delayed recovery waiting for its time, if any. */
  readonly pending?: PendingRecovery;
}
