import { hello } from '@atrium/matrix';
test('x', () => expect(hello).toBe(1));
