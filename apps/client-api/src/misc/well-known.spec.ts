import { defaultConfig } from '@atrium/config';
import { MatrixError } from '@atrium/http';
import { WellKnownExtrasController } from './unsupported.controller';

describe('GET /.well-known/matrix/support', () => {
  it('is 404 without support information', () => {
    const controller = new WellKnownExtrasController(defaultConfig('example.org'));
    expect(() => controller.support()).toThrow(MatrixError);
    try {
      controller.support();
    } catch (e) {
      expect([(e as MatrixError).status, (e as MatrixError).errcode]).toEqual([404, 'M_NOT_FOUND']);
    }
  });

  it('gives the configured contacts (valid ones) and page', () => {
    const config = defaultConfig('example.org');
    config.support = {
      contacts: [{ role: 'm.role.admin', matrix_id: '@admin:example.org' }, { role: 'm.role.security' }, { role: 'm.role.security', email_address: 'sec@example.org' }],
      support_page: 'https://example.org/help',
    };
    expect(new WellKnownExtrasController(config).support()).toEqual({
      contacts: [{ role: 'm.role.admin', matrix_id: '@admin:example.org' }, { role: 'm.role.security', email_address: 'sec@example.org' }],
      support_page: 'https://example.org/help',
    });
    expect(new WellKnownExtrasController({ ...config, support: { contacts: [], support_page: 'https://example.org/help' } }).support()).toEqual({ support_page: 'https://example.org/help' });
  });
});
