/**
 * Client-Server API media endpoints (client-server-api "Content repository";
 * data/api/client-server/authed-content-repo.yaml and content-repo.yaml).
 * The authenticated /_matrix/client/v1/media/* endpoints, the uploads (still
 * under /_matrix/media), and the deprecated unauthenticated v3 downloads.
 */
import { Controller, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AtriumConfig } from '@atrium/config';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, type RateLimiter, type Requester } from '@atrium/http';
import { sanitiseContentType } from '@atrium/matrix';
import { CONFIG, RATE_LIMITER } from '@atrium/platform';
import { checkMediaPath, fetchOptions, sendMedia, sendThumbnail, thumbnailRequest, uploadFilename, type Query as QueryParams } from './http-helpers';
import type { MediaService } from './media.service';
import type { BlobStore } from './storage/blob-store';
import { BLOB_STORE, MEDIA_SERVICE, URL_PREVIEWER } from './tokens';
import { stagedUpload } from './upload-body';
import type { UrlPreviewer } from './url-preview';

const V1 = '_matrix/client/v1/media';
/** r0 alongside v3 for older clients; the router sends all of /_matrix/media here. */
const LEGACY = ['_matrix/media/v3', '_matrix/media/r0'];
const legacy = (path: string): string[] => LEGACY.map((prefix) => `${prefix}/${path}`);

function uploadContentType(request: FastifyRequest): string | undefined {
  const header = request.headers['content-type'];
  return sanitiseContentType(Array.isArray(header) ? header[0] : header);
}

/** Uploads and the media configuration: always with an access token. */
@Controller()
@UseGuards(AccessTokenGuard)
export class MediaUploadController {
  constructor(
    @Inject(MEDIA_SERVICE) private readonly media: MediaService,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(URL_PREVIEWER) private readonly previewer: UrlPreviewer,
    @Inject(RATE_LIMITER) private readonly rateLimiter: RateLimiter,
  ) {}

  /** "As well as limiting the rate of requests to create mxc:// URIs" (and uploads): per user, 429 M_LIMIT_EXCEEDED. */
  private limit(requester: Requester): Promise<void> {
    return this.rateLimiter.check('media_upload', requester.userId, this.config.rate_limits.media_upload);
  }

  /** POST /_matrix/media/v3/upload. */
  @Post(legacy('upload'))
  @HttpCode(200)
  async upload(@CurrentRequester() requester: Requester, @Req() request: FastifyRequest, @Query() query: QueryParams) {
    await this.limit(requester);
    const staged = await stagedUpload(request, this.blobs);
    return this.media.upload(requester.userId, staged, uploadContentType(request), uploadFilename(query));
  }

  /** PUT /_matrix/media/v3/upload/{serverName}/{mediaId} (v1.7): the upload of a media ID made by /create. */
  @Put(legacy('upload/:serverName/:mediaId'))
  async uploadTo(
    @CurrentRequester() requester: Requester,
    @Req() request: FastifyRequest,
    @Param('serverName') serverName: string,
    @Param('mediaId') mediaId: string,
    @Query() query: QueryParams,
  ) {
    checkMediaPath(serverName, mediaId);
    await this.limit(requester);
    const staged = await stagedUpload(request, this.blobs);
    return this.media.uploadTo(requester.userId, serverName, mediaId, staged, uploadContentType(request), uploadFilename(query));
  }

  /** POST /_matrix/media/v1/create (v1.7). */
  @Post('_matrix/media/v1/create')
  @HttpCode(200)
  async create(@CurrentRequester() requester: Requester) {
    await this.limit(requester);
    return this.media.create(requester.userId);
  }

  /** GET /_matrix/client/v1/media/config and the deprecated /_matrix/media/v3/config. */
  @Get([`${V1}/config`, ...legacy('config')])
  @AllowGuests()
  mediaConfig() {
    return { 'm.upload.size': this.config.media.max_upload_size };
  }

  /** GET /_matrix/client/v1/media/preview_url and the deprecated v3 one. */
  @Get([`${V1}/preview_url`, ...legacy('preview_url')])
  previewUrl(@Query() query: QueryParams) {
    const url = query.url;
    if (url === undefined) throw Errors.missingParam('url');
    if (typeof url !== 'string') throw Errors.invalidParam('url must be a string');
    return this.previewer.preview(url);
  }
}

/** GET /_matrix/client/v1/media/download and /thumbnail: authenticated (v1.11). */
@Controller(V1)
@UseGuards(AccessTokenGuard)
@AllowGuests()
export class AuthenticatedMediaController {
  constructor(@Inject(MEDIA_SERVICE) private readonly media: MediaService) {}

  @Get(['download/:serverName/:mediaId', 'download/:serverName/:mediaId/:fileName'])
  async download(
    @Param('serverName') serverName: string,
    @Param('mediaId') mediaId: string,
    @Param('fileName') fileName: string | undefined,
    @Query() query: QueryParams,
    @Res() reply: FastifyReply,
  ) {
    checkMediaPath(serverName, mediaId);
    const found = await this.media.get(serverName, mediaId, fetchOptions(query, false));
    return sendMedia(reply, this.media, found, fileName);
  }

  @Get('thumbnail/:serverName/:mediaId')
  async thumbnail(@Param('serverName') serverName: string, @Param('mediaId') mediaId: string, @Query() query: QueryParams, @Res() reply: FastifyReply) {
    checkMediaPath(serverName, mediaId);
    const request = thumbnailRequest(query);
    return sendThumbnail(reply, this.media, await this.media.thumbnail(serverName, mediaId, request, fetchOptions(query, false)));
  }
}

/**
 * The deprecated unauthenticated downloads (GET /_matrix/media/v3/download,
 * /thumbnail). The spec's freeze ("servers SHOULD 'freeze' the deprecated,
 * unauthenticated, endpoints") is `media.unauthenticated_freeze_ts`, off by
 * default: operators "SHOULD consider their local ecosystem impact before
 * enacting a freeze", and matrix-js-sdk builds these URLs unless told to use
 * authenticated media.
 */
@Controller(LEGACY)
export class LegacyMediaController {
  constructor(
    @Inject(MEDIA_SERVICE) private readonly media: MediaService,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  @Get(['download/:serverName/:mediaId', 'download/:serverName/:mediaId/:fileName'])
  async download(
    @Param('serverName') serverName: string,
    @Param('mediaId') mediaId: string,
    @Param('fileName') fileName: string | undefined,
    @Query() query: QueryParams,
    @Res() reply: FastifyReply,
  ) {
    checkMediaPath(serverName, mediaId);
    const found = await this.media.get(serverName, mediaId, fetchOptions(query, true, this.config.media.unauthenticated_freeze_ts));
    return sendMedia(reply, this.media, found, fileName);
  }

  @Get('thumbnail/:serverName/:mediaId')
  async thumbnail(@Param('serverName') serverName: string, @Param('mediaId') mediaId: string, @Query() query: QueryParams, @Res() reply: FastifyReply) {
    checkMediaPath(serverName, mediaId);
    const request = thumbnailRequest(query);
    return sendThumbnail(reply, this.media, await this.media.thumbnail(serverName, mediaId, request, fetchOptions(query, true, this.config.media.unauthenticated_freeze_ts)));
  }
}
