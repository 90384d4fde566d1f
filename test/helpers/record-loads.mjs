/**
 * Preloaded with `node --import` (test/cli/lazy-load.test.ts): appends the URL of every module the
 * process resolves, one a line, to the file named by $DKMS_RECORD_LOADS. ES modules through a
 * `module.register()` resolve hook; CommonJS `require`s (which that hook does not see in Node 20)
 * through `Module._resolveFilename`.
 */
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const file = process.env['DKMS_RECORD_LOADS'];
if (file !== undefined && file !== '') {
  const hooks = `
    import { appendFileSync } from 'node:fs';
    export async function resolve(specifier, context, nextResolve) {
      const result = await nextResolve(specifier, context);
      appendFileSync(${JSON.stringify(file)}, result.url + '\\n');
      return result;
    }`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`);
  const resolveFilename = Module._resolveFilename;
  Module._resolveFilename = function (...args) {
    const resolved = resolveFilename.apply(this, args);
    appendFileSync(file, `${resolved.startsWith('/') ? pathToFileURL(resolved).href : `node:${resolved}`}\n`);
    return resolved;
  };
}
