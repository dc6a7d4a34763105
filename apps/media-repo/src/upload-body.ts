/**
 * Upload bodies bypass the JSON parser every Atrium app installs
 * (@atrium/platform http-app.ts): on the upload routes a `preParsing` hook
 * streams the body to a temporary file of the blob store, hashing it and
 * stopping at `media.max_upload_size` (413 M_TOO_LARGE, client-server-api
 * "Security considerations"), and leaves the request with no body for the
 * parsers. The staged file is committed by the handler, or removed when the
 * response is sent.
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { extractAccessToken, Errors, MatrixError } from '@atrium/http';
import { BlobTooLargeError, type BlobStore, type StagedBlob } from './storage/blob-store';

type UploadRequest = FastifyRequest & { mediaUpload?: StagedBlob };

/** Route patterns (Fastify form) whose body is media. */
export function isUploadRoute(url: string | undefined): boolean {
  return url !== undefined && /^\/_matrix\/media\/(v3|r0|v1)\/upload(\/:serverName\/:mediaId)?$/.test(url);
}

function sendError(reply: FastifyReply, error: MatrixError): void {
  void reply.status(error.status).headers({ 'content-type': 'application/json', ...error.headers }).send(error.toJSON());
}

export function installUploadBodyHook(fastify: FastifyInstance, blobs: BlobStore, maxBytes: number): void {
  fastify.addHook('preParsing', async (request: UploadRequest, reply, payload) => {
    if (!isUploadRoute(request.routeOptions.url) || (request.method !== 'POST' && request.method !== 'PUT')) return payload;
    // Refuse early what would be refused anyway, before writing anything.
    if (!extractAccessToken(request)) {
      sendError(reply, Errors.missingToken());
      return payload;
    }
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      sendError(reply, Errors.tooLarge(`Uploads are limited to ${maxBytes} bytes`));
      return payload;
    }
    try {
      request.mediaUpload = await blobs.stage(payload, maxBytes);
    } catch (err) {
      if (err instanceof BlobTooLargeError) {
        sendError(reply, Errors.tooLarge(`Uploads are limited to ${maxBytes} bytes`));
        return payload;
      }
      throw err;
    }
    // The body is consumed: the parsers get an empty one instead (no length to check it against).
    delete request.raw.headers['content-length'];
    delete request.raw.headers['transfer-encoding'];
    const empty = new PassThrough();
    empty.end();
    return empty;
  });
  fastify.addHook('onResponse', async (request: UploadRequest) => {
    if (request.mediaUpload) await blobs.discard(request.mediaUpload);
  });
}

/** The staged upload of a request (an empty body stages an empty file). */
export async function stagedUpload(request: FastifyRequest, blobs: BlobStore): Promise<StagedBlob> {
  const upload = (request as UploadRequest).mediaUpload;
  return upload ?? blobs.stageBuffer(Buffer.alloc(0));
}
