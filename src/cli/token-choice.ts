/**
 * Which token a command uses: a PKCS#11 URI (RFC 7512) given to `--hsm`, or `--token` and
 * `--module`, else the token the wallet is bound to, else $DKMS_HSM_MODULE for the module. A PIN
 * named by the URI's `pin-source` is read like `--pin-file`; a PIN in the URI is refused.
 */
import { badInput } from '../errors.js';
import { parsePkcs11Uri } from '../hsm/uri.js';
import type { Context } from './context.js';

export interface TokenOptions {
  /** `--hsm`: true for the flag alone, or a PKCS#11 URI. */
  readonly hsm?: string | boolean;
  readonly token?: string;
  readonly module?: string;
}

export interface TokenChoice {
  readonly module: string;
  readonly token: string;
  /** The object label the URI names, if it does. */
  readonly label?: string;
  /** The command's context, with the URI's pin-source as its PIN file. */
  readonly ctx: Context;
}

export function chooseToken(ctx: Context, opts: TokenOptions, bound?: { module: string; token: string }): TokenChoice {
  let token = opts.token;
  let module = opts.module;
  let label: string | undefined;
  let pinFile: string | undefined;
  if (typeof opts.hsm === 'string') {
    const uri = parsePkcs11Uri(opts.hsm);
    if (uri.type !== undefined && uri.type !== 'private') throw badInput(`--hsm names a key to make: its type is private, not ${uri.type}`);
    token = uri.token ?? token;
    module = uri.modulePath ?? module;
    label = uri.object;
    if (uri.pinSource !== undefined) pinFile = uri.pinSource.replace(/^file:(\/\/)?/, '');
  }
  token ??= bound?.token;
  module ??= ctx.tokenModule ?? bound?.module;
  if (token === undefined) throw badInput('name the token: --token LABEL, or a PKCS#11 URI with token=… given to --hsm');
  if (module === undefined) throw badInput("name the token's PKCS#11 module: --module PATH, module-path=… in the URI, or $DKMS_HSM_MODULE");
  return { token, module, ...(label === undefined ? {} : { label }), ctx: pinFile === undefined ? ctx : ctx.with({ pinFile }) };
}
