/**
 * Imported first by every page: zod compiles its object parsers with `new Function` when it can,
 * and the pages' Content-Security-Policy (no 'unsafe-eval', Trusted Types) forbids that. Zod
 * would find out by trying, which the browser reports as a violation; told up front, it never
 * tries and parses the same way without compiling.
 */
import { z } from 'zod';

z.config({ jitless: true });
