export const MEDIA_SERVICE = Symbol('atrium:media-service');
export const BLOB_STORE = Symbol('atrium:blob-store');
export const URL_PREVIEWER = Symbol('atrium:url-previewer');
