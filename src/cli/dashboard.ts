/** The web dashboard that `dkms up` and `dkms ledger serve` serve: the package's build, and its address to print. */
import { fileURLToPath } from 'node:url';
import { loadWebAssets, type WebAssets } from '../server/web-assets.js';
import { isLoopbackAddress } from '../server/web-routes.js';
import type { Context } from './context.js';
import { packageDir } from './version.js';

/** Said on stderr when the package holds no build of the dashboard: the API is served without it. */
export const NOT_BUILT = 'dkms: dashboard not built: run npm run build\n';

/**
 * The package's built dashboard (`dist/web/`), or undefined, said in one line on stderr, when
 * it was not built.
 *
 * @throws DkmsError BAD_INPUT or IO_ERROR from loadWebAssets (a build too large, unreadable).
 */
export async function loadDashboard(ctx: Context): Promise<WebAssets | undefined> {
  const assets = await loadWebAssets(fileURLToPath(new URL('dist/web/', packageDir())));
  if (assets === undefined) ctx.io.err(NOT_BUILT);
  return assets;
}

/** Whether the build holds the owner console and `host` is a loopback address, the only place it is offered. */
export function offersConsole(assets: WebAssets, host: string): boolean {
  return assets.has('/ui/console/index.html') && isLoopbackAddress(host);
}

/** Said on stderr by `dkms up --host` on an address other machines reach: the owner console is not served there. */
export const CONSOLE_OFF_NOT_LOOPBACK = 'dkms: owner console off: --host is not loopback\n';

/** The base address of a ledger node that `--host host` made listen at `url`: one on every address (0.0.0.0, ::) is shown at 127.0.0.1. */
function shownAt(host: string, url: string): string {
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const { port } = new URL(url);
  return `http://${shown}${port === '' ? '' : `:${port}`}`;
}

/** The owner console's address on the ledger node that `--host host` (a loopback address) made listen at `url`. */
export function consoleUrl(host: string, url: string): string {
  return `${shownAt(host, url)}/ui/console/`;
}

/** The explorer's address on a ledger node that `--host host` made listen at `url`, with the node key to trust in its fragment. */
export function explorerUrl(host: string, url: string, nodeKey: string): string {
  return `${shownAt(host, url)}/ui/#trust=${nodeKey}`;
}
