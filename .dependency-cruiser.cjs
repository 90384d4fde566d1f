/**
 * The layering of src/ (docs/architecture.md, "Parts and the direction of imports"): each part
 * imports only the parts before it in LAYERS. `npm run lint` runs this; a wrong import fails CI.
 */
const LAYERS = [
  ['base', '^src/(errors|bounded|files|http|http-fetch|http-web|sqlite|qr|retry)\\.ts$'],
  ['crypto', '^src/crypto/'],
  ['hsm', '^src/hsm/'],
  ['wallet', '^src/wallet/'],
  ['policy', '^src/policy/'],
  ['ledger', '^src/ledger/'],
  ['did', '^src/did/'],
  ['didcomm', '^src/didcomm/'],
  ['custody', '^src/custody/'],
  ['agency', '^src/agency/'],
  ['agent', '^src/agent/'],
  ['resolver', '^src/resolver/'],
  ['recovery', '^src/recovery/'],
  ['server', '^src/server/'],
  ['cli', '^src/cli/'],
  ['root', '^src/index\\.ts$'],
];

const layerRules = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `${name}-imports-only-lower-parts`,
  comment: `${name} may import only the parts listed before it in .dependency-cruiser.cjs LAYERS`,
  severity: 'error',
  from: { path },
  to: { path: LAYERS.slice(i + 1).map(([, later]) => later) },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'agent-uses-only-the-agency-client',
      comment: "an edge agent talks to an agency through its client and the request signing; it never reaches the agency's server domain or stores",
      severity: 'error',
      from: { path: '^src/(agent|recovery)/' },
      to: { path: '^src/agency/', pathNot: '^src/agency/(agency-client|request-auth|index)\\.ts$' },
    },
    {
      name: 'didcomm-is-self-contained',
      comment: 'DIDComm envelopes depend on the crypto primitives alone',
      severity: 'error',
      from: { path: '^src/didcomm/' },
      to: { path: '^src/(wallet|policy|ledger|did|agency|agent)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'web-uses-only-the-verifying-core',
      comment:
        'the dashboard (web/) runs the verifying client in the browser: it may import crypto, policy, ledger, did and the shared ground of src/, nothing that holds keys or runs servers',
      severity: 'error',
      from: { path: '^web/' },
      to: { path: '^src/', pathNot: '^src/(crypto|policy|ledger|did)/|^src/(errors|retry|http|http-fetch|http-web)\\.ts$|^src/server/console-types\\.ts$' },
    },
    {
      name: 'web-pages-use-no-node-module',
      comment: "the dashboard's pages run in a browser: no Node built-in (the build swaps src/'s platform modules for browser ones)",
      severity: 'error',
      from: { path: '^web/', pathNot: '\\.mjs$' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'src-not-from-web',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^web/' },
    },
    {
      name: 'src-not-from-tests-or-benches',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|examples)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs'],
    },
  },
};
