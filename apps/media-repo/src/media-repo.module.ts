import { join } from 'node:path';
import { Inject, Injectable, Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import type { AtriumConfig } from '@atrium/config';
import { XMatrixGuard } from '@atrium/app-federation-inbound';
import { FEDERATION_CLIENT, FederationClientModule, type FederationClient } from '@atrium/federation-client';
import { CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import { AuthenticatedMediaController, LegacyMediaController, MediaUploadController } from './client-media.controller';
import { FederationMediaController } from './federation-media.controller';
import { MediaService } from './media.service';
import type { RemoteMediaClient } from './remote-media';
import { FileBlobStore, type BlobStore } from './storage/blob-store';
import { MediaStore } from './storage/media-store';
import { Thumbnailer } from './thumbnailer';
import { BLOB_STORE, MEDIA_SERVICE, URL_PREVIEWER } from './tokens';
import { installUploadBodyHook } from './upload-body';
import { UrlPreviewer } from './url-preview';

/** `media.store_path`, or `<data_dir>/media` when it is empty. */
export function mediaStorePath(config: AtriumConfig): string {
  return config.media.store_path || join(config.data_dir, 'media');
}

/** Installs the upload body handling on the app's Fastify instance before it starts listening. */
@Injectable()
class UploadBodyInstaller implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    installUploadBodyHook(fastify, this.blobs, this.config.media.max_upload_size);
    // Uploads a crash cut off; a day is far longer than any upload runs.
    void this.blobs.sweepStaged(24 * 3600_000).catch(() => undefined);
  }
}

/**
 * The media repository: /_matrix/client/v1/media/**, /_matrix/media/**
 * (uploads, and the deprecated unauthenticated downloads) and federation
 * media (/_matrix/federation/v1/media/**). Bytes in a BlobStore (files under
 * `media.store_path`, shared by every replica: see storage/blob-store.ts),
 * metadata in the DocumentStore.
 */
@Module({
  imports: [FederationClientModule],
  controllers: [MediaUploadController, AuthenticatedMediaController, LegacyMediaController, FederationMediaController],
  providers: [
    XMatrixGuard,
    {
      provide: BLOB_STORE,
      useFactory: (config: AtriumConfig) => new FileBlobStore(mediaStorePath(config)),
      inject: [CONFIG],
    },
    {
      provide: MEDIA_SERVICE,
      useFactory: async (config: AtriumConfig, store: DocumentStore, blobs: BlobStore, federation?: FederationClient & Partial<RemoteMediaClient>) =>
        new MediaService(
          config.server_name,
          config.media,
          await MediaStore.open(store),
          blobs,
          new Thumbnailer(config.media.thumbnail_sizes, config.media.max_thumbnail_pixels),
          federation,
        ),
      inject: [CONFIG, DOCUMENT_STORE, BLOB_STORE, { token: FEDERATION_CLIENT, optional: true }],
    },
    {
      provide: URL_PREVIEWER,
      useFactory: (config: AtriumConfig, store: DocumentStore, media: MediaService) => UrlPreviewer.open(config, store, media),
      inject: [CONFIG, DOCUMENT_STORE, MEDIA_SERVICE],
    },
    UploadBodyInstaller,
  ],
})
export class MediaRepoModule {}
