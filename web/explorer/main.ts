import { LedgerClient, checkWebCrypto } from '../shared/verify.js';

const status = document.getElementById('status');
const test = await checkWebCrypto();
if (status !== null) {
  if (!test.ok) status.textContent = test.reason;
  else {
    const head = await new LedgerClient({ url: location.origin, fetch: (a, b) => fetch(a, b) }).head();
    status.textContent = `verified head of ${head.size} events`;
  }
}
