/**
 * PKCS#11 URIs (RFC 7512) as dkms reads them: the RFC's own examples, percent-encoding of any
 * byte (an object id is binary), and a specific refusal for everything else — a PIN in the URI
 * first of all.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePkcs11Uri } from '../../src/hsm/uri.js';
import { expectCode } from '../helpers/errors.js';

const percent = (bytes: Uint8Array) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

describe('PKCS#11 URIs', () => {
  it('reads the token, object, type, id, slot and module, as RFC 7512 writes them', () => {
    expect(parsePkcs11Uri('pkcs11:token=ceremony;object=admin;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin')).toEqual({
      token: 'ceremony',
      object: 'admin',
      type: 'private',
      modulePath: '/usr/lib/softhsm/libsofthsm2.so',
      pinSource: 'file:/run/pin',
    });
    // RFC 7512 section 7's examples.
    expect(parsePkcs11Uri('pkcs11:')).toEqual({});
    expect(parsePkcs11Uri('pkcs11:object=my-pubkey;type=public')).toEqual({ object: 'my-pubkey', type: 'public' });
    expect(
      parsePkcs11Uri(
        'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91',
      ),
    ).toEqual({
      token: 'The Software PKCS#11 Softtoken',
      manufacturer: 'Snake Oil, Inc.',
      model: '1.0',
      object: 'my-certificate',
      type: 'cert',
      id: new Uint8Array([0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91]),
    });
    expect(parsePkcs11Uri('pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?module-name=mypkcs11')).toEqual({
      token: 'Software PKCS#11 softtoken',
      manufacturer: 'Snake Oil, Inc.',
      moduleName: 'mypkcs11',
    });
    expect(parsePkcs11Uri('pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert')).toMatchObject({
      token: 'A name with a substring %;',
    });
    expect(parsePkcs11Uri('pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert').token).toBe(
      'Name with a small A with acute: á',
    );
    expect(parsePkcs11Uri('PKCS11:slot-id=7;object=k')).toEqual({ slotId: 7, object: 'k' });
  });

  it('takes any bytes as an id, and any text as a label, percent-encoded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ maxLength: 40 }), (id, label) => {
        const parsed = parsePkcs11Uri(`pkcs11:object=${percent(new TextEncoder().encode(label))};id=${percent(id)}`);
        expect(parsed.id).toEqual(id);
        expect(parsed.object).toBe(label);
      }),
    );
  });

  it('refuses a PIN in the URI, and anything else RFC 7512 does not allow, each saying what', () => {
    const pin = expectCode(() => parsePkcs11Uri('pkcs11:token=t;object=k?pin-value=1234'), 'BAD_INPUT');
    expect(pin.message).toContain('pin-source');
    expect(pin.message).not.toContain('1234');
    for (const [uri, says] of [
      ['https://token', 'does not begin with pkcs11:'],
      ['pkcs11:token=a;token=b', "'token' is given twice"],
      ['pkcs11:colour=red', "unknown path attribute 'colour'"],
      ['pkcs11:token=t?colour=red', "unknown query attribute 'colour'"],
      ['pkcs11:token', "'token' is not an attribute=value pair"],
      ['pkcs11:type=secret', 'type must be one of public, private, cert, secret-key, data'],
      ['pkcs11:id=%G1', "'id' has a '%' not followed by two hex digits"],
      ['pkcs11:object=%FF%FE', "'object' is not UTF-8 once decoded"],
      ['pkcs11:slot-id=-1', 'slot-id must be a decimal number'],
      [`pkcs11:object=${'x'.repeat(5000)}`, 'longer than 4096 characters'],
    ] as const) {
      expect(expectCode(() => parsePkcs11Uri(uri), 'BAD_INPUT').message, uri).toContain(says);
    }
  });
});
