/**
 * One request-validator compiler for every server of the process. Fastify makes a new one (a new
 * Ajv, which first compiles its meta-schema) for each server it builds, and compiles every route
 * schema again: most of the CPU a server start costs. Shared, with the route schemas made once
 * (openapi.ts routeSchema), each schema is compiled once per process and servers with the same
 * validator options use the same Ajv; what each route accepts is unchanged.
 */
import AjvCompiler from '@fastify/ajv-compiler';

/** Fastify's `schemaController.compilersFactory`: validators pooled per option set, for the whole process. */
export const sharedValidators = { buildValidator: AjvCompiler() };
