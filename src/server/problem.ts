/** RFC 9457 problem details for every error a dkms server returns, carrying the dkms error code. */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';

export interface Problem {
  readonly type: string;
  readonly title: ErrorCode;
  readonly status: number;
  readonly detail: string;
  readonly code: ErrorCode;
}

export function problemOf(error: DkmsError): Problem {
  const status = ERROR_CODES[error.code].http;
  return { type: `urn:dkms:error:${error.code}`, title: error.code, status, detail: error.message, code: error.code };
}

/** Maps fastify's own failures (schema, body size, rate limit, unknown route) to dkms codes. */
function fromFastify(error: FastifyError, malformedCode: (url: string) => ErrorCode, url: string, tooLarge: ErrorCode): DkmsError {
  if (error instanceof DkmsError) return error;
  if (error.statusCode === 429) return new DkmsError('RATE_LIMITED', 'too many requests: slow down and retry later');
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new DkmsError(tooLarge, 'request body is too large');
  if (
    error.validation !== undefined ||
    error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ||
    error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    error.statusCode === 400
  ) {
    return new DkmsError(malformedCode(url), error.message.split('\n')[0] ?? 'bad request');
  }
  return new DkmsError('INTERNAL', 'internal error');
}

export function sendProblem(reply: FastifyReply, error: DkmsError): void {
  const problem = problemOf(error);
  void reply.code(problem.status).type('application/problem+json').send(problem);
}

/**
 * What a client is told of a failure on the server's side (a 5xx code): its code, not its
 * message, which may name the server's files. The message goes to the operator instead.
 */
function forClient(error: DkmsError): DkmsError {
  if (ERROR_CODES[error.code].http < 500 || ERROR_CODES[error.code].http >= 502) return error;
  return new DkmsError(error.code, `the server failed (${error.code}); its operator finds the cause in the server's error output`);
}

/** Where a server reports its own failures by default: one line on standard error. */
const toStderr = (error: DkmsError | FastifyError, where: string): void => {
  process.stderr.write(
    `dkms server: ${where}: ${error instanceof DkmsError ? error.code : 'INTERNAL'}: ${(error.message.split('\n')[0] ?? '').slice(0, 500)}\n`,
  );
};

export function installProblemHandlers(
  app: FastifyInstance,
  malformedCode: (url: string) => ErrorCode,
  tooLarge: ErrorCode = 'EVENT_TOO_LARGE',
  onServerError: (error: DkmsError | FastifyError, where: string) => void = toStderr,
): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const dkms = fromFastify(error, malformedCode, request.url, tooLarge);
    const told = forClient(dkms);
    if (told !== dkms) onServerError(dkms.code === 'INTERNAL' ? error : dkms, `${request.method} ${request.url.split('?')[0] ?? ''}`);
    sendProblem(reply, told);
  });
  app.setNotFoundHandler((request, reply) => {
    sendProblem(reply, new DkmsError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`));
  });
}
