import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IpRangeFilter } from '@atrium/federation-client';
import { guardedGet, parseOpenGraph } from './url-preview';

describe('parseOpenGraph', () => {
  it('reads og: tags, first one wins, with title and description as fallbacks', () => {
    expect(parseOpenGraph('<html><head><meta property="og:title" content="A &amp; B"><meta property="og:title" content="second"><meta property="og:image" content="/i.png"></head></html>')).toEqual({
      'og:title': 'A & B',
      'og:image': '/i.png',
    });
    expect(parseOpenGraph('<title> Plain page </title><meta name="description" content="about it">')).toEqual({ 'og:title': 'Plain page', 'og:description': 'about it' });
    expect(parseOpenGraph('not html at all')).toEqual({});
  });
});

describe('guardedGet', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/hop') res.writeHead(302, { location: '/page' }).end();
      else if (req.url === '/big') res.writeHead(200, { 'content-type': 'text/html' }).end('x'.repeat(5000));
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<title>t</title>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const loopbackAllowed = new IpRangeFilter(['127.0.0.0/8', '::1/128'], ['127.0.0.1/32']);
  const loopbackBlocked = new IpRangeFilter(['127.0.0.0/8', '::1/128'], []);

  it('follows redirects and reads the page when the address is allowed', async () => {
    const page = await guardedGet(new URL(`http://127.0.0.1:${port}/hop`), loopbackAllowed, 1000, true);
    expect(page.status).toBe(200);
    expect(page.url.pathname).toBe('/page');
    expect(page.body.toString()).toBe('<title>t</title>');
  });

  it('refuses blocked addresses, as IP literals and through DNS', async () => {
    await expect(guardedGet(new URL(`http://127.0.0.1:${port}/page`), loopbackBlocked, 1000, true)).rejects.toThrow(/blocked/);
    await expect(guardedGet(new URL(`http://localhost:${port}/page`), loopbackBlocked, 1000, true)).rejects.toThrow(/blocked/);
  });

  it('cuts the body at the limit', async () => {
    const page = await guardedGet(new URL(`http://127.0.0.1:${port}/big`), loopbackAllowed, 1000, true);
    expect(page.truncated).toBe(true);
    expect(page.body.length).toBe(1000);
  });
});
