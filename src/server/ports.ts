/** The servers' default ports, apart from the servers themselves: commands that only name them need not load an HTTP framework. */
export const DEFAULT_LEDGER_PORT = 8420;
export const DEFAULT_AGENCY_PORT = 8421;
export const DEFAULT_WITNESS_PORT = 8422;
