/**
 * What the owner console's API answers (docs/dashboard.md, "Owner console API"): types only, so
 * that the console's page (web/console/) imports them as types and loads nothing of the server.
 * Each section of the overview is what a CLI command prints with `--json`, field for field, run
 * in the unlock session: private material never appears in any of them.
 */
import type { RevocationOutcome } from '../agent/revocation.js';

/** One agent of the owner's policy, as `dkms agent list --json` prints it. */
export interface ConsoleAgent {
  readonly key: string;
  /** The label this device knows it by ('' when none). */
  readonly label: string;
  /** Flag names joined by commas, or 'none'. */
  readonly flags: string;
  /** Its X25519 key-agreement key ('' when none). */
  readonly kx: string;
  /** Whether it is this device's agent. */
  readonly me: boolean;
}

/** `dkms agent list --json`. */
export interface ConsoleAgentList {
  readonly policy: string;
  readonly agents: readonly ConsoleAgent[];
  /** Whether this device's agent is in the policy (false mid-pairing or mid-restore). */
  readonly listed: boolean;
}

/** A policy's agent as the ledger records it (flags as the number of bits). */
export interface ConsolePolicyAgent {
  readonly key: string;
  readonly kx?: string;
  readonly flags: number;
}

/** A recovery commitment: digests of the next recovery keys, how many must sign, the delay in seconds. */
export interface ConsoleRecoveryCommitment {
  readonly digests: readonly string[];
  readonly threshold: number;
  readonly delay?: number;
}

/** A delayed recovery waiting on the ledger. */
export interface ConsolePendingRecovery {
  /** Ledger time of the `policy.recover`, and the earliest ledger time it may complete. */
  readonly since: string;
  readonly until: string;
  readonly next: ConsoleRecoveryCommitment;
  readonly agents?: readonly ConsolePolicyAgent[];
  readonly rules?: { readonly grant: number; readonly revoke: number; readonly rules: number; readonly did: number };
  readonly revealed: readonly string[];
}

/** A backup stored at the cloud agent: its version there, and when. */
export interface ConsoleBackupVersion {
  readonly version: number;
  readonly at: string;
}

/** `dkms recovery status --json`; the fields from `offline` to `lastBackup` only once recovery is set up. */
export interface ConsoleRecoveryStatus {
  readonly setUp: boolean;
  readonly provisional: boolean;
  readonly offline?: boolean;
  readonly social?: { readonly set: string; readonly threshold: number; readonly trustees: readonly string[] } | null;
  /** Seconds a recovery waits on the ledger before it completes. */
  readonly delay?: number;
  readonly lastBackup?: ConsoleBackupVersion | null;
  /** A change of trustees prepared, and the trustees who have not yet taken their share. */
  readonly prepared: { readonly set: string; readonly missing: readonly string[] } | null;
  readonly pending: ConsolePendingRecovery | null;
}

/** `dkms trustee list --json`. */
export interface ConsoleTrusteeList {
  readonly trustees: readonly {
    readonly id: string;
    readonly label: string;
    readonly status: 'offered' | 'accepted' | 'declined';
    readonly holdsShare: boolean;
    readonly connection: string;
  }[];
  readonly threshold: number | null;
  readonly prepared: { readonly set: string; readonly missing: readonly string[] } | null;
  /** Shares this owner keeps for other owners: their states joined by commas, or 'none yet'. */
  readonly holding: readonly { readonly offer: string; readonly owner: string; readonly policy: string; readonly shares: string }[];
}

/** The backups and their age, from `dkms recovery status --json` (the last one stored at the cloud agent). */
export interface ConsoleBackups {
  readonly lastBackup: ConsoleBackupVersion | null;
  /** Seconds since the last backup, when the overview was made; null when there is none. */
  readonly ageSeconds: number | null;
}

/** `dkms connection list --json`. */
export interface ConsoleConnectionList {
  readonly connections: readonly {
    readonly id: string;
    readonly peer: string;
    readonly label: string;
    readonly state: 'active' | 'deleted' | 'deleted-by-peer';
    readonly created: string;
    readonly myKeys: number;
    readonly mySeq: number;
    readonly peerKeys: number;
    readonly peerSeq: number;
    readonly joined: boolean;
    readonly flags: readonly { readonly time: string; readonly code: string; readonly detail: string }[];
  }[];
}

/** `dkms custodian status --json`. */
export interface ConsoleCustodianStatus {
  readonly pending: readonly { readonly id: string; readonly purpose: string; readonly expires: string }[];
  readonly set: string;
  readonly epoch: number;
  readonly mode: 'unseal' | 'approval';
  readonly threshold: number;
  readonly custodians: readonly { readonly name: string; readonly sign: string; readonly kx: string }[];
  readonly perHour?: number;
  readonly digest: string;
}

/** `dkms audit show --json --last 200`: the newest records of the audit log of master-key use, oldest first. */
export interface ConsoleAuditShow {
  readonly records: readonly {
    readonly seq: number;
    readonly time: string;
    readonly op: string;
    readonly outcome: string;
    readonly detail: Readonly<Record<string, unknown>>;
  }[];
}

/** A key the wallet holds, public facts only (from `dkms key list --json`). */
export interface ConsoleWalletKey {
  readonly name: string;
  readonly type: string;
  /** 'wallet', 'token:<label>' or 'custody'. */
  readonly location: string;
  readonly publicKey?: string;
}

/** The wallet: what opens it (from `dkms wallet info --json`) and the keys it holds. */
export interface ConsoleWallet {
  /** 'passphrase' or 'raw key', 'token <label>', 'custodians (unseal)' or 'custodians (approval)'. */
  readonly factors: readonly string[];
  readonly keys: readonly ConsoleWalletKey[];
}

/** A section of the overview whose command failed: the section is null, and this says why. */
export interface ConsoleProblem {
  readonly section: string;
  readonly code: string;
  readonly message: string;
}

/** `GET /ui/console/api/overview`. */
export interface ConsoleOverview {
  /** The data directory. */
  readonly home: string;
  readonly wallet: ConsoleWallet | null;
  readonly agents: ConsoleAgentList | null;
  readonly recovery: ConsoleRecoveryStatus | null;
  readonly trustees: ConsoleTrusteeList | null;
  readonly backups: ConsoleBackups | null;
  readonly connections: ConsoleConnectionList | null;
  /** Null when the wallet has no custodians. */
  readonly custody: ConsoleCustodianStatus | null;
  /** Null when there is no audit log. */
  readonly audit: ConsoleAuditShow | null;
  readonly problems: readonly ConsoleProblem[];
}

/** `POST /ui/console/api/session`'s answer. */
export interface ConsoleLogin {
  readonly csrf: string;
  /** When the session ends at the latest (ISO 8601), however busy. */
  readonly expiresAt: string;
  /** It ends sooner after this many seconds without a request. */
  readonly idleSeconds: number;
}

/** `dkms agent revoke <key> --wait 0 --json`: revoked, or waiting for co-signers (the agent's own outcome, as printed). */
export type ConsoleRevocation = RevocationOutcome;

/** `dkms recovery backup --json`: the version stored at the cloud agent, and the backup's size. */
export interface ConsoleBackupMade {
  readonly version?: number;
  readonly file?: string;
  readonly size: number;
}

/** `dkms recovery cancel --json`. */
export interface ConsoleRecoveryCancelled {
  /** When the cancelled recovery had started (its `since`). */
  readonly cancelled: string;
}

/** The answer of each action: what its command printed. */
export interface ConsoleActionAnswer<T> {
  readonly result: T;
}
