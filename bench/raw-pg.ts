/** The raw limits of a PostgreSQL server for the agency bench: durable single-row inserts and reads by key. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Inserts `count` rows of `rowBytes` each, one per transaction (synchronous commit, the server's
 * defaults), from `concurrency` connections at once; then reads them back by key the same way.
 */
export async function rawPostgres(url: string, count: number, rowBytes: number, concurrency: number): Promise<{ insertsPerSec: number; readsPerSec: number }> {
  const pool = new pg.Pool({ connectionString: url, max: concurrency });
  try {
    await pool.query('CREATE TABLE raw_t (name TEXT PRIMARY KEY, value BYTEA NOT NULL)');
    const value = randomBytes(rowBytes);
    const timed = async (work: (i: number) => Promise<unknown>): Promise<number> => {
      let next = 0;
      const start = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < count) await work(next++);
        }),
      );
      return count / (Number(process.hrtime.bigint() - start) / 1e9);
    };
    // Connections opened before the clock starts.
    await Promise.all(Array.from({ length: concurrency }, () => pool.query('SELECT 1')));
    const insertsPerSec = await timed((i) => pool.query('INSERT INTO raw_t (name, value) VALUES ($1, $2)', [`row-${i}`, value]));
    const readsPerSec = await timed((i) => pool.query('SELECT value FROM raw_t WHERE name = $1', [`row-${i}`]));
    return { insertsPerSec, readsPerSec };
  } finally {
    await pool.end();
  }
}
