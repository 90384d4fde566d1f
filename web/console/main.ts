/**
 * The owner console: this data directory's identity, for its owner, on loopback only. It logs in
 * with the wallet passphrase (the server opens the wallet in an unlock session, or checks the
 * passphrase against the running one), shows the agents and their flags, recovery, backups,
 * trustees, connections, custodians and the audit log, and offers the actions that are safe from
 * a browser, each confirmed first: revoke an agent, back up now, cancel a pending recovery.
 * Private keys never reach the browser: the server runs the CLI's own commands in the session.
 */
import '../shared/zod-setup.js';
import { parseFlags } from '../../src/policy/flags.js';
import { byId, fill, h, type Child } from '../shared/dom.js';
import { agentGraph } from '../explorer/pictures.js';
import { reasonOf } from '../shared/status.js';
import * as api from './api.js';
import type { ConsoleAgent, ConsoleAuditShow, ConsoleBackups, ConsoleOverview, ConsoleRecoveryStatus } from '../../src/server/console-types.js';
import { age, duration, when } from '../shared/format.js';
import { keyHierarchy } from './hierarchy.js';
import { verifyAgents } from './verify-agents.js';
import { jsonView } from './render.js';

/** The server's answer when the console's session is missing or over. */
const LOGIN_REQUIRED = 'CONSOLE_LOGIN_REQUIRED';

const main = byId('main');
const status = byId('console-status');

function say(text: string, kind: 'info' | 'ok' | 'bad' = 'info'): void {
  status.dataset.kind = kind;
  status.textContent = text;
}

function errorText(error: unknown): string {
  const { code, message } = reasonOf(error);
  return `${code}: ${message}`;
}

function loginForm(reason?: string): void {
  document.documentElement.dataset.console = 'login';
  const input = h('input', { id: 'passphrase', name: 'passphrase', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit' }, 'Log in');
  const form = h(
    'form',
    { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Owner console'),
    h('p', {}, 'This page manages the identity in this machine’s data directory. It is served on this machine’s loopback address only.'),
    h('label', { for: 'passphrase' }, 'Wallet passphrase'),
    input,
    button,
    h(
      'p',
      { class: 'muted small' },
      'The passphrase opens the wallet on this machine; no key leaves it. The console’s session ends after 15 minutes without use.',
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const passphrase = input.value;
    input.value = '';
    button.disabled = true;
    say('Opening the wallet… (its key stretching takes a moment)');
    api.login(passphrase).then(
      () => void show(),
      (e: unknown) => {
        button.disabled = false;
        say(errorText(e), 'bad');
        input.focus();
      },
    );
  });
  fill(main, form);
  if (reason !== undefined) say(reason, 'bad');
  else say('Logged out.');
  input.focus();
}

/** A modal asking to confirm an action by typing `expected`; resolves true when confirmed. */
function confirmBy(title: string, body: Child, expected: string): Promise<boolean> {
  return new Promise((resolve) => {
    const input = h('input', { id: 'confirm-text', autocomplete: 'off', spellcheck: 'false' });
    const confirm = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Confirm');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const dialog = h(
      'dialog',
      { 'aria-labelledby': 'confirm-title' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, title),
        body,
        h('label', { for: 'confirm-text' }, 'Type ', h('code', {}, expected), ' to confirm'),
        input,
        h('div', { class: 'actions' }, cancel, confirm),
      ),
    );
    input.addEventListener('input', () => (confirm.disabled = input.value.trim() !== expected));
    cancel.addEventListener('click', () => dialog.close('cancel'));
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue !== 'cancel' && input.value.trim() === expected);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** Runs an action, says how it went, and shows the overview again. */
async function act(what: string, run: () => Promise<{ result: unknown }>): Promise<void> {
  say(`${what}…`);
  try {
    const { result } = await run();
    await show();
    say(`${what}: done.`, 'ok');
    byId('last-result').replaceChildren(h('h2', {}, `${what}: answer`), h('div', {}, jsonView(result)));
  } catch (e) {
    if (reasonOf(e).code === LOGIN_REQUIRED) return loginForm('Your console session ended: log in again.');
    say(`${what} failed: ${errorText(e)}`, 'bad');
  }
}

function agentsSection(overview: ConsoleOverview): HTMLElement {
  const view = overview.agents;
  if (view === null) return h('section', { class: 'card' }, h('h2', {}, 'Agents'), h('p', {}, 'Not available (see the problems above).'));
  const rows = view.agents.map((agent: ConsoleAgent) => {
    const name = agent.label === '' ? agent.key.slice(0, 12) : agent.label;
    const revoke = h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke agent ${name}` }, 'Revoke…');
    revoke.addEventListener('click', () => {
      void confirmBy(
        `Revoke agent ${name}?`,
        h(
          'p',
          {},
          'It is removed from your policy on the ledger: its signatures stop counting from now on. This cannot be undone; the device would have to pair again.',
        ),
        name,
      ).then((yes) => {
        if (yes) void act(`Revoking ${name}`, () => api.revokeAgent(agent.key));
      });
    });
    return h(
      'tr',
      { 'data-key': agent.key },
      h('td', {}, agent.me ? h('strong', {}, 'this device') : ''),
      h('td', {}, agent.label || h('span', { class: 'muted' }, 'no label')),
      h('td', {}, agent.flags),
      h('td', {}, h('code', {}, agent.key)),
      h('td', {}, agent.me ? h('span', { class: 'muted small' }, 'not from here') : revoke),
    );
  });
  // Read again from the ledger in this browser, verified with WebCrypto, and compared.
  const check = h('p', { class: 'muted', 'data-field': 'agents-check', 'aria-live': 'polite' }, 'Checking these agents against the ledger in this browser…');
  void verifyAgents(view.policy, view.agents).then((result) => {
    check.className = result.ok ? 'badge-ok' : 'failure';
    check.dataset.state = result.ok ? 'verified' : 'failed';
    check.textContent = result.ok
      ? `✓ Verified in this browser: the ledger (a head of ${result.size} events) proves exactly these agents and flags.`
      : `✗ Not verified in this browser: ${result.reason}`;
  });
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'agents-title' },
    h('h2', { id: 'agents-title' }, 'Agents'),
    h(
      'p',
      {},
      'Policy ',
      h('a', { href: `/ui/policy/${encodeURIComponent(view.policy)}` }, h('code', {}, view.policy)),
      ' (open it in the explorer to see it verified).',
    ),
    h(
      'table',
      { class: 'agents' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['', 'Label', 'Flags', 'Key', 'Action'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h('tbody', {}, rows),
    ),
    agentGraph(
      view.policy,
      view.agents.map((a) => ({ key: a.key, flags: parseFlags(a.flags) })),
    ),
    check,
  );
}

/** The audit log's records (checked by `dkms audit show` before it answered: chained, signed, none removed), newest first. */
function auditTable(audit: ConsoleAuditShow): Child {
  const details = (detail: Readonly<Record<string, unknown>>) =>
    Object.entries(detail)
      .map(([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join('; ');
  return [
    h('p', {}, `${audit.records.length} record${audit.records.length === 1 ? '' : 's'} shown, the chain checked: each signed and linked to the one before.`),
    h(
      'table',
      { class: 'audit' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['#', 'Time', 'Operation', 'Outcome', 'Details'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        {},
        [...audit.records]
          .reverse()
          .map((r) =>
            h(
              'tr',
              {},
              h('td', {}, String(r.seq)),
              h('td', {}, h('time', { datetime: r.time }, when(r.time))),
              h('td', {}, h('code', {}, r.op)),
              h('td', {}, r.outcome),
              h('td', { class: 'small' }, details(r.detail)),
            ),
          ),
      ),
    ),
  ];
}

function backupsText(backups: ConsoleBackups | null): Child {
  if (backups === null) return h('p', {}, 'Not available (see the problems above).');
  if (backups.lastBackup === null) return h('p', { 'data-field': 'last-backup' }, 'No backup at your cloud agent yet.');
  return h(
    'p',
    { 'data-field': 'last-backup' },
    `The last backup at your cloud agent is version ${backups.lastBackup.version}, made ${when(backups.lastBackup.at)} (${age(backups.lastBackup.at)}).`,
  );
}

function recoverySection(recovery: ConsoleRecoveryStatus | null): HTMLElement {
  if (recovery === null) return section('recovery', 'Recovery', h('p', {}, 'Not available (see the problems above).'));
  const pending = recovery.pending;
  const cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel this recovery…');
  cancel.addEventListener('click', () => {
    void confirmBy(
      'Cancel the pending recovery?',
      h('p', {}, 'Someone holding your recovery keys started a recovery of this identity. If it was not you, cancel it before its delay ends.'),
      'cancel',
    ).then((yes) => {
      if (yes) void act('Cancelling the recovery', api.cancelRecovery);
    });
  });
  return section(
    'recovery',
    'Recovery',
    pending === null
      ? h('p', { 'data-field': 'pending-recovery' }, 'No recovery is pending on the ledger.')
      : h(
          'div',
          { class: 'failure', role: 'alert', 'data-field': 'pending-recovery' },
          h('p', { class: 'failure-title' }, 'A recovery of this identity is pending'),
          h('p', {}, `Started ${when(pending.since)}; it takes effect from ${when(pending.until)} (${age(pending.until)}) unless cancelled.`),
          cancel,
        ),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Set up'),
      h('dd', {}, recovery.setUp ? (recovery.provisional ? 'yes, provisionally' : 'yes') : 'no: run dkms recovery setup'),
      h('dt', {}, 'Paper wallet'),
      h('dd', {}, recovery.offline === true ? 'yes' : 'no'),
      h('dt', {}, 'Trustees'),
      h('dd', {}, recovery.social ? `${recovery.social.threshold} of ${recovery.social.trustees.length}: ${recovery.social.trustees.join(', ')}` : 'none'),
      h('dt', {}, 'Delay'),
      h('dd', {}, recovery.delay ? duration(recovery.delay) : 'none'),
      h('dt', {}, 'Trustee change'),
      h(
        'dd',
        { 'data-field': 'prepared' },
        recovery.prepared === null ? 'none in progress' : `prepared; waiting for ${recovery.prepared.missing.join(', ') || 'nobody'}`,
      ),
    ),
  );
}

function section(id: string, title: string, body: Child, ...actions: HTMLElement[]): HTMLElement {
  return h(
    'section',
    { class: 'card', 'aria-labelledby': `${id}-title`, id },
    h('h2', { id: `${id}-title` }, title),
    body,
    actions.length === 0 ? null : h('div', { class: 'actions' }, actions),
  );
}

async function show(): Promise<void> {
  let overview: ConsoleOverview;
  try {
    overview = await api.overview<ConsoleOverview>();
  } catch (e) {
    if (reasonOf(e).code === LOGIN_REQUIRED) return loginForm(api.hasLogin() ? 'Your console session ended: log in again.' : undefined);
    say(errorText(e), 'bad');
    return;
  }
  document.documentElement.dataset.console = 'overview';
  const logout = h('button', { type: 'button', class: 'secondary' }, 'Log out');
  logout.addEventListener('click', () => {
    void api.logout().finally(() => loginForm());
  });
  const backup = h('button', { type: 'button' }, 'Back up now');
  backup.addEventListener('click', () => void act('Backing up', api.backUp));
  fill(
    main,
    h('h1', {}, 'Owner console'),
    h('p', { class: 'muted' }, 'Data directory ', h('code', {}, overview.home), '. ', logout),
    overview.problems.length === 0
      ? null
      : h(
          'div',
          { class: 'failure', role: 'alert' },
          h('p', { class: 'failure-title' }, 'Some parts could not be read'),
          h(
            'ul',
            {},
            overview.problems.map((p) => h('li', {}, `${p.section}: `, h('code', {}, p.code), ` ${p.message}`)),
          ),
        ),
    h('div', { id: 'last-result', class: 'card', 'aria-live': 'polite' }),
    agentsSection(overview),
    overview.wallet === null ? null : section('wallet', 'Key hierarchy', keyHierarchy(overview.wallet.factors, overview.wallet.keys)),
    recoverySection(overview.recovery),
    section('backups', 'Backups', backupsText(overview.backups), backup),
    section('trustees', 'Trustees', jsonView(overview.trustees)),
    section('connections', 'Connections', jsonView(overview.connections)),
    overview.custody === null ? null : section('custody', 'Custodians', jsonView(overview.custody)),
    overview.audit === null ? null : section('audit', 'Audit log', auditTable(overview.audit)),
  );
  say('Logged in.', 'ok');
}

void (api.hasLogin() ? show() : Promise.resolve(loginForm()));
