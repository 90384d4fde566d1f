/**
 * The QR code libraries, loaded on first use: few commands draw or read a QR code, and loading
 * them at start-up cost every command tens of milliseconds.
 */
import type QRCodeModule from 'qrcode';
import type { PNG } from 'pngjs';

export async function qrCode(): Promise<typeof QRCodeModule> {
  return (await import('qrcode')).default;
}

/** PNG decoding and QR reading, for scanned paper. */
type JsQr = (typeof import('jsqr'))['default'];

export async function qrReader(): Promise<{ readPng: (bytes: Buffer) => PNG; jsQR: JsQr }> {
  const [{ PNG: Png }, jsqr] = await Promise.all([import('pngjs'), import('jsqr')]);
  // jsqr is CommonJS with `exports.default`: the default import is its whole `module.exports`.
  const exported = jsqr.default as JsQr | { default: JsQr };
  return { readPng: (bytes) => Png.sync.read(bytes), jsQR: typeof exported === 'function' ? exported : exported.default };
}
