/**
 * Which commands the session client forwards to an unlock session, and for which data directory:
 * it reads the command line as commander will (global options that take a value, lists, `--`),
 * so that servers, help and the session's own commands always run in their own process.
 */
import { describe, expect, it } from 'vitest';
import { commandOf, homeOf, runsHere } from '../../src/cli/session-client.js';

describe('the session client reads the command line', () => {
  it('finds the command after global options and their values, and the --home it names', () => {
    expect(commandOf(['key', 'list'])).toEqual({ words: ['key', 'list'], home: undefined });
    expect(commandOf(['--home', '/data/a', '--json', 'key', 'sign', '--name', 'k', '--in', 'f'])).toEqual({ words: ['key', 'sign'], home: '/data/a' });
    expect(commandOf(['--home=/data/b', 'did', 'resolve', 'did:dkms:x'])).toEqual({ words: ['did', 'resolve'], home: '/data/b' });
    expect(commandOf(['--ledger', 'http://l', '--quorum', '2', 'message', 'send', 'bob', 'hi'])).toEqual({ words: ['message', 'send'], home: undefined });
    // List options take every word up to the next option.
    expect(commandOf(['--trust', 'z6Mk1', 'z6Mk2', '--json', 'agent', 'list']).words).toEqual(['agent', 'list']);
    // Nothing after `--` is an option or a command word.
    expect(commandOf(['message', 'send', '--', '-abc', 'text']).words).toEqual(['message', 'send']);
  });

  it('runs servers, offline ledger work, help, version, unlock and lock in their own process', () => {
    for (const argv of [
      [],
      ['--help'],
      ['key', 'sign', '--help'],
      ['-V'],
      ['help', 'key'],
      ['up', '--ledger-port', '0'],
      ['--home', '/h', 'unlock'],
      ['lock'],
      ['ledger', 'serve'],
      ['ledger', 'witness', '--ledger', 'http://l'],
      ['ledger', 'verify'],
      ['ledger', 'reindex'],
      ['agency', 'serve'],
    ]) {
      expect(runsHere(commandOf(argv).words), argv.join(' ')).toBe(true);
    }
    for (const argv of [['key', 'list'], ['ledger', 'status'], ['agency', 'list'], ['agent', 'pair'], ['doctor'], ['did', 'resolve', 'did:dkms:x']]) {
      expect(runsHere(commandOf(argv).words), argv.join(' ')).toBe(false);
    }
  });

  it('resolves the data directory as commands do: --home, else DKMS_HOME (unless empty), else ~/.dkms, from the working directory', () => {
    expect(homeOf('rel', {}, '/work')).toBe('/work/rel');
    expect(homeOf(undefined, { DKMS_HOME: '/env/home' }, '/work')).toBe('/env/home');
    expect(homeOf(undefined, { DKMS_HOME: '' }, '/work')).toMatch(/\/\.dkms$/);
  });
});
