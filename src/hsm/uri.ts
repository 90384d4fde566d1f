/**
 * PKCS#11 URIs (RFC 7512): how a key in a token is named, e.g.
 * `pkcs11:token=ceremony;object=admin;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so`.
 * Path attributes select the token and the object; query attributes say how to reach them. A
 * PIN written in the URI (`pin-value`) is refused: a URI is given on command lines, which every
 * user of the machine can read. `pin-source` (a file) is kept for the caller to read.
 */
import { DkmsError } from '../errors.js';

export type ObjectType = 'public' | 'private' | 'cert' | 'secret-key' | 'data';

export interface Pkcs11Uri {
  /** The token's label. */
  readonly token?: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly model?: string;
  /** The object's label (CKA_LABEL). */
  readonly object?: string;
  readonly type?: ObjectType;
  /** The object's id (CKA_ID), as bytes. */
  readonly id?: Uint8Array;
  readonly slotId?: number;
  readonly modulePath?: string;
  readonly moduleName?: string;
  /** Where the PIN is: a `file:` URI or a path, read by the caller. */
  readonly pinSource?: string;
}

const TYPES: readonly ObjectType[] = ['public', 'private', 'cert', 'secret-key', 'data'];
const TEXT_PATH = { token: 'token', manufacturer: 'manufacturer', serial: 'serial', model: 'model', object: 'object' } as const;
const OTHER_PATH = ['type', 'id', 'slot-id', 'library-manufacturer', 'library-description', 'library-version', 'slot-description', 'slot-manufacturer'];
const QUERY = ['module-path', 'module-name', 'pin-source', 'pin-value'];

const bad = (message: string) => new DkmsError('BAD_INPUT', `PKCS#11 URI: ${message}`);

/** The bytes a percent-encoded value stands for; BAD_INPUT for a stray '%'. */
function decode(value: string, attribute: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '%') {
      // One whole code point (a character outside the BMP is two UTF-16 units).
      const ch = String.fromCodePoint(value.codePointAt(i) ?? 0);
      bytes.push(...new TextEncoder().encode(ch));
      i += ch.length - 1;
      continue;
    }
    const hex = value.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw bad(`'${attribute}' has a '%' not followed by two hex digits`);
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return new Uint8Array(bytes);
}

function text(value: string, attribute: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(decode(value, attribute));
  } catch (e) {
    if (e instanceof DkmsError) throw e;
    throw bad(`'${attribute}' is not UTF-8 once decoded`);
  }
}

/** The attributes of one component (path or query), each once. */
function attributes(component: string, separator: string, known: readonly string[], where: string): Map<string, string> {
  const found = new Map<string, string>();
  if (component === '') return found;
  for (const pair of component.split(separator)) {
    const at = pair.indexOf('=');
    const name = at === -1 ? pair : pair.slice(0, at);
    if (at === -1 || name === '') throw bad(`'${pair}' is not an attribute=value pair`);
    if (!known.includes(name)) throw bad(`unknown ${where} attribute '${name}' (known: ${known.join(', ')})`);
    if (found.has(name)) throw bad(`'${name}' is given twice`);
    found.set(name, pair.slice(at + 1));
  }
  return found;
}

/** Parses a PKCS#11 URI; BAD_INPUT, naming what is wrong, for anything RFC 7512 does not allow or dkms does not take. */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) throw bad(`'${uri.slice(0, 40)}' does not begin with pkcs11:`);
  if (uri.length > 4096) throw bad('longer than 4096 characters');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = attributes(q === -1 ? rest : rest.slice(0, q), ';', [...Object.keys(TEXT_PATH), ...OTHER_PATH], 'path');
  const query = attributes(q === -1 ? '' : rest.slice(q + 1), '&', QUERY, 'query');
  if (query.has('pin-value')) {
    throw bad('a PIN in the URI (pin-value) would be on the command line, where other users can read it: use pin-source=file:…, or let dkms ask');
  }
  const result: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(TEXT_PATH)) {
    const value = path.get(name);
    if (value !== undefined) result[key] = text(value, name);
  }
  const type = path.get('type');
  if (type !== undefined) {
    if (!TYPES.includes(type as ObjectType)) throw bad(`type must be one of ${TYPES.join(', ')}, not '${type}'`);
    result['type'] = type;
  }
  const id = path.get('id');
  if (id !== undefined) result['id'] = decode(id, 'id');
  const slot = path.get('slot-id');
  if (slot !== undefined) {
    if (!/^[0-9]{1,10}$/.test(slot)) throw bad(`slot-id must be a decimal number, not '${slot}'`);
    result['slotId'] = Number(slot);
  }
  for (const [name, key] of [
    ['module-path', 'modulePath'],
    ['module-name', 'moduleName'],
    ['pin-source', 'pinSource'],
  ] as const) {
    const value = query.get(name);
    if (value !== undefined) result[key] = text(value, name);
  }
  return result as Pkcs11Uri;
}
