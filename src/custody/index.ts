/**
 * M-of-n custody (`dkms/custody`): a custody secret split among named custodians, released to
 * one process only by the approvals of a threshold of them for one request. Pure functions over
 * keys; storing sets and carrying requests and approvals is the caller's.
 * @module dkms/custody
 */
export * from './custodians.js';
export * from './requests.js';
export * from './audit.js';
