/** Defaults of the agent's protocols, apart from them: the CLI shows them in its help without loading the protocols. */

/** How long a pairing invitation is valid. */
export const DEFAULT_PAIRING_TTL_SECONDS = 600;

/** How long a connection invitation is valid. */
export const DEFAULT_CONNECTION_TTL_SECONDS = 7 * 24 * 3600;
