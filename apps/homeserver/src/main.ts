import { hello } from '@atrium/matrix'; console.log('hi', hello);
