export { MediaRepoModule } from './media-repo.module';
