/**
 * Store failures injected into a process that runs a server from the compiled code in dist/
 * (test/server/shutdown-child.mjs, or the unbundled CLI, test/helpers/unbundled-cli.mjs, started
 * with NODE_OPTIONS=--import=<this file> and DKMS_TEST_FAULT=<server>:<fault>; the bundle that
 * bin/dkms.js runs has its own copy of the store classes, which this does not reach). Each makes every later
 * call of one store method fail (or hang, or slow down), as a disk or database gone bad would,
 * while the server runs on. A patch of the store class's prototype reaches the store the server
 * opened, since the server loads the same module.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DkmsError } from '../../dist/src/errors.js';

const injected = () => new DkmsError('IO_ERROR', 'injected store failure (test)');
/** How long a slowed store call takes. */
const SLOW_MS = 1000;
const slowly = () => new Promise((resolve) => setTimeout(resolve, SLOW_MS));

const ledgerStore = async () => (await import('../../dist/src/ledger/sqlite-store.js')).SqliteLogStore.prototype;
const agencyStore = async () => (await import('../../dist/src/agency/sqlite-agency-store.js')).SqliteAgencyStore.prototype;

/** By server, then fault: what each does to the store. `home` is the server's data directory. */
const FAULTS = {
  ledger: {
    /** Every append is refused before anything is written. */
    async write() {
      (await ledgerStore()).appendWritten = () => Promise.reject(injected());
    },
    /** Appends are written but never made durable (the sync fails): the node stops taking events. */
    async sync() {
      const store = await ledgerStore();
      const appendWritten = store.appendWritten;
      store.appendWritten = async function (batch) {
        const written = await appendWritten.call(this, batch);
        await written.durable;
        const durable = Promise.reject(injected());
        durable.catch(() => undefined);
        return { durable };
      };
    },
    /** An append that never ends (a store that stopped answering). */
    async hang() {
      (await ledgerStore()).appendWritten = () => new Promise(() => undefined);
    },
    /** Every append takes SLOW_MS longer (a slow disk), then succeeds. */
    async slow() {
      const store = await ledgerStore();
      const appendWritten = store.appendWritten;
      store.appendWritten = async function (batch) {
        await slowly();
        return appendWritten.call(this, batch);
      };
    },
    /** Closing the store fails. */
    async close() {
      (await ledgerStore()).close = () => Promise.reject(injected());
    },
  },
  agency: {
    /** Every group commit of deliveries fails. */
    async deliver() {
      (await agencyStore()).deliverMany = () => Promise.reject(injected());
    },
    /** A group commit of deliveries that never ends. */
    async hang() {
      (await agencyStore()).deliverMany = () => new Promise(() => undefined);
    },
    /** Every group commit takes SLOW_MS longer, then succeeds. */
    async slow() {
      const store = await agencyStore();
      const deliverMany = store.deliverMany;
      store.deliverMany = async function (deliveries, limits) {
        await slowly();
        return deliverMany.call(this, deliveries, limits);
      };
    },
    /** Closing the store fails. */
    async close() {
      (await agencyStore()).close = () => Promise.reject(injected());
    },
  },
  witness: {
    /** The witness's state file cannot be written any more: a non-empty directory stands where it was. */
    async state(home) {
      const { WITNESS_STATE_FILE } = await import('../../dist/src/ledger/witness.js');
      const path = join(home, 'witness', WITNESS_STATE_FILE);
      rmSync(path, { force: true });
      mkdirSync(path);
      writeFileSync(join(path, 'blocker'), '');
    },
  },
};

export async function injectFault(server, fault, home) {
  const inject = FAULTS[server]?.[fault];
  if (inject === undefined) throw new Error(`no fault ${fault} for a ${server}`);
  await inject(home);
}

// Loaded with --import: the faults DKMS_TEST_FAULT names (comma-separated server:fault) are in place before the command runs.
for (const item of (process.env['DKMS_TEST_FAULT'] ?? '').split(',').filter((s) => s !== '')) {
  const [server = '', fault = ''] = item.split(':');
  await injectFault(server, fault, process.env['DKMS_HOME'] ?? '');
}
