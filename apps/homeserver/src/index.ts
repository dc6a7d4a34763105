export { startEmbedded, ALL_SERVICE_MODULES } from './embedded';
