import { runService } from '@atrium/platform';
import { MediaRepoModule } from './media-repo.module';

void runService('media-repo', [MediaRepoModule]);
