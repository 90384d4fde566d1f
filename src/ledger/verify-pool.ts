/**
 * Ed25519 signature checks spread over worker threads, so a node uses every core for the one
 * expensive step of validation. Workers run node:crypto only; their code is inline so that it
 * loads the same way from the compiled build and from sources under test.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export interface SignatureJob {
  /** Raw 32-byte Ed25519 public key. */
  readonly key: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
parentPort.on('message', ({ id, jobs }) => {
  const results = jobs.map(({ key, message, signature }) => {
    try {
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key).toString('base64url') }, format: 'jwk' });
      return verify(null, message, publicKey, signature);
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ id, results });
});
`;

interface Waiting {
  readonly resolve: (results: boolean[]) => void;
  readonly reject: (error: Error) => void;
}

export class VerifyPool {
  readonly #workers: Worker[];
  readonly #waiting = new Map<number, Waiting>();
  #next = 0;
  #closed = false;

  constructor(threads = availableParallelism()) {
    this.#workers = Array.from({ length: Math.max(1, threads) }, () => {
      // No inherited flags: the inline source is CommonJS whatever the parent was started with.
      const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
      worker.on('message', ({ id, results }: { id: number; results: boolean[] }) => {
        this.#waiting.get(id)?.resolve(results);
        this.#waiting.delete(id);
        if (this.#waiting.size === 0) this.#idle();
      });
      worker.on('error', (error) => this.#failAll(error));
      // A worker that ends (crashed, or out of memory) answers nothing more: what waits for it
      // must not wait forever, and no more work goes to the pool (the node checks on its own thread).
      worker.on('exit', (code) => {
        if (this.#closed) return;
        this.#closed = true;
        this.#failAll(new Error(`a signature worker exited (code ${code})`));
      });
      worker.unref();
      return worker;
    });
  }

  /** Idle workers do not keep the process alive; busy ones do, until their answer arrives. */
  #idle(): void {
    for (const worker of this.#workers) worker.unref();
  }

  #busy(): void {
    for (const worker of this.#workers) worker.ref();
  }

  /** False once closed, or once a worker ended: `verify` then refuses. */
  get usable(): boolean {
    return !this.#closed;
  }

  get threads(): number {
    return this.#workers.length;
  }

  #failAll(error: Error): void {
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
    this.#idle();
  }

  #run(worker: Worker, jobs: readonly SignatureJob[]): Promise<boolean[]> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#busy();
      worker.postMessage({ id, jobs });
    });
  }

  /** Verifies every job; the result for each is true only for a valid signature. */
  async verify(jobs: readonly SignatureJob[]): Promise<boolean[]> {
    if (this.#closed) throw new Error('verify pool is closed');
    const size = Math.ceil(jobs.length / this.#workers.length);
    const parts = await Promise.all(this.#workers.map((worker, i) => this.#run(worker, jobs.slice(i * size, (i + 1) * size))));
    return parts.flat();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failAll(new Error('verify pool closed'));
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
