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
  if (error.validation !== undefined || error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || error.statusCode === 400) {
    return new DkmsError(malformedCode(url), error.message.split('\n')[0] ?? 'bad request');
  }
  return new DkmsError('INTERNAL', 'internal error');
}

export function sendProblem(reply: FastifyReply, error: DkmsError): void {
  const problem = problemOf(error);
  void reply.code(problem.status).type('application/problem+json').send(problem);
}

export function installProblemHandlers(app: FastifyInstance, malformedCode: (url: string) => ErrorCode, tooLarge: ErrorCode = 'EVENT_TOO_LARGE'): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const dkms = fromFastify(error, malformedCode, request.url, tooLarge);
    if (dkms.code === 'INTERNAL') request.log.error({ err: error }, 'unexpected error');
    sendProblem(reply, dkms);
  });
  app.setNotFoundHandler((request, reply) => {
    sendProblem(reply, new DkmsError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`));
  });
}
