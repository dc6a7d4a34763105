/**
 * Server-Server API "Content Repository" (data/api/server-server/content_repository.yaml):
 * other servers download this server's media, signed with X-Matrix. The
 * answer is multipart/mixed with exactly two parts: `{}` as JSON metadata,
 * then the bytes with their Content-Type and Content-Disposition.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Controller, Get, Inject, Param, Query, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { AtriumConfig } from '@atrium/config';
import { XMatrixGuard } from '@atrium/app-federation-inbound';
import { Errors } from '@atrium/http';
import { contentDisposition, isValidMediaId } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';
import { fetchOptions, thumbnailRequest, type Query as QueryParams } from './http-helpers';
import type { MediaService } from './media.service';
import { MEDIA_SERVICE } from './tokens';

function multipart(reply: FastifyReply, contentType: string, disposition: string, body: Readable | Buffer): FastifyReply {
  // RFC 2046 section 5.1.1: a boundary that cannot occur in the content by chance.
  const boundary = randomBytes(16).toString('hex');
  const head = Buffer.from(
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
      `--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Disposition: ${disposition}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const stream = Readable.from(
    (async function* () {
      yield head;
      if (Buffer.isBuffer(body)) yield body;
      else for await (const chunk of body) yield chunk as Buffer;
      yield tail;
    })(),
  );
  return reply.status(200).header('content-type', `multipart/mixed; boundary=${boundary}`).send(stream);
}

@Controller('_matrix/federation/v1/media')
@UseGuards(XMatrixGuard)
export class FederationMediaController {
  constructor(
    @Inject(MEDIA_SERVICE) private readonly media: MediaService,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  /** Only this server's own media is served over federation; cached remote copies are not. */
  private async local(mediaId: string, query: QueryParams) {
    if (!isValidMediaId(mediaId)) throw Errors.invalidParam('Invalid media ID');
    const found = await this.media.get(this.config.server_name, mediaId, { ...fetchOptions(query, false), allowRemote: false });
    if (found.record.remote) throw Errors.notFound('Media not found');
    return found;
  }

  @Get('download/:mediaId')
  async download(@Param('mediaId') mediaId: string, @Query() query: QueryParams, @Res() reply: FastifyReply) {
    const found = await this.local(mediaId, query);
    const type = found.record.content_type ?? 'application/octet-stream';
    return multipart(reply, type, contentDisposition(type, found.record.filename ?? undefined), this.media.open(found));
  }

  @Get('thumbnail/:mediaId')
  async thumbnail(@Param('mediaId') mediaId: string, @Query() query: QueryParams, @Res() reply: FastifyReply) {
    const request = thumbnailRequest(query);
    if (!isValidMediaId(mediaId)) throw Errors.invalidParam('Invalid media ID');
    const thumbnail = await this.media.thumbnail(this.config.server_name, mediaId, request, { ...fetchOptions(query, false), allowRemote: false });
    if (thumbnail.kind === 'original') {
      const type = thumbnail.media.record.content_type ?? 'application/octet-stream';
      return multipart(reply, type, 'inline; filename="thumbnail"', this.media.open(thumbnail.media));
    }
    return multipart(reply, thumbnail.contentType, 'inline; filename="thumbnail"', thumbnail.bytes);
  }
}
