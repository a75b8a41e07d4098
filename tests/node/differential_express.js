// The Express 5 reference app of the differential harness: stock Express with cookie-parser and
// its own body parsers. tests/differential/gateway_express_app.py is the same app written
// against the gateway's API; the cases in tests/differential/cases.py drive both. Route for
// route the two files must stay in step (same paths, same replies).
'use strict';

const express = require('express');
const cookieParser = require('cookie-parser');
const { echo } = require('./differential_echo');

const SECRET = 'harness-secret';

function buildExpressApp() {
  const app = express();
  app.use(cookieParser(SECRET));
  const send = (req, res) => res.json(echo(req));

  // The request API without a body parser, then with the simple and the extended parsers.
  app.all('/echo', send);
  app.all('/echo/:id', send);
  const parsed = express.Router();
  parsed.use(express.json(), express.urlencoded({ extended: false }), express.text());
  parsed.all('/echo', send);
  parsed.all('/echo/:id', send);
  app.use('/parsed', parsed);
  const extended = express.Router();
  extended.use(express.json(), express.urlencoded({ extended: true }));
  extended.all('/echo', send);
  app.use('/extended', extended);

  // Route patterns (path-to-regexp 8 syntax) and a regex route.
  app.get('/user/:id', send);
  app.get('/user/:id/books/:book', send);
  app.get('/file/*path', send);
  app.get('/opt{/:maybe}', send);
  app.get('/dl/:file.:ext', send);
  app.get(/^\/re\/(\d+)\/(\w+)$/, send);

  // Mounted routers: mergeParams, a router without it, nested routers.
  const shop = express.Router({ mergeParams: true });
  shop.get('/', send);
  shop.get('/items/:itemId', send);
  app.use('/shop/:shopId', shop);
  const store = express.Router();
  store.get('/items/:itemId', send);
  app.use('/store/:storeId', store);
  const api = express.Router();
  const v1 = express.Router();
  v1.get('/things/:id', send);
  api.use('/v1', v1);
  app.use('/api', api);

  // Cookies set and cleared.
  app.get('/cookies/set', (req, res) => {
    res.cookie('plain', 'v 1;x');
    res.cookie('obj', { a: 1 });
    res.json({ ok: true });
  });
  app.get('/cookies/signed', (req, res) => {
    res.cookie('sig', 'sv', { signed: true });
    res.json({ ok: true });
  });
  app.get('/cookies/options', (req, res) => {
    res.cookie('o', '1', {
      maxAge: 60000, path: '/p', httpOnly: true, sameSite: 'strict', secure: true,
      domain: 'example.com',
    });
    res.json({ ok: true });
  });
  app.get('/cookies/clear', (req, res) => {
    res.clearCookie('plain');
    res.json({ ok: true });
  });

  // Redirects and Location.
  app.get('/redirect', (req, res) => res.redirect('/target?x=1'));
  app.get('/redirect/301', (req, res) => res.redirect(301, '/moved'));
  app.get('/redirect/encoded', (req, res) => res.redirect('/a b/\u00fc?q=1 2&r=%41'));
  app.get('/redirect/absolute', (req, res) => res.redirect('http://example.com/x?y=<z>'));
  app.get('/location', (req, res) => {
    res.location('/loc path');
    res.sendStatus(201);
  });

  // What res.send / res.json / res.type / res.set produce.
  app.get('/status/:code', (req, res) => res.sendStatus(Number(req.params.code)));
  app.get('/send/text', (req, res) => res.send('hello'));
  app.get('/send/buffer', (req, res) => res.send(Buffer.from('bin')));
  app.get('/send/json-null', (req, res) => res.json(null));
  app.get('/send/number', (req, res) => res.json(42));
  app.get('/send/string-json', (req, res) => res.json('str'));
  app.get('/send/object', (req, res) => res.send({ a: 1 }));
  app.get('/send/empty', (req, res) => res.send());
  app.get('/send/end', (req, res) => res.end());
  app.get('/send/204', (req, res) => res.status(204).send('ignored'));
  app.get('/send/typed', (req, res) => res.type('text').send('plain'));
  app.get('/type/:t', (req, res) => res.type(req.params.t).send('x'));
  app.get('/headers', (req, res) => {
    res.set('X-One', '1');
    res.set({ 'X-Two': '2', 'X-Three': '3' });
    res.append('X-List', 'a');
    res.append('X-List', 'b');
    res.send('ok');
  });

  // Errors: thrown, rejected, next(err) with a status, an error handler, next('route').
  app.get('/throw', () => {
    throw new Error('boom');
  });
  app.get('/throw-async', async () => {
    throw new Error('boom');
  });
  app.get('/next-error/:code', (req, res, next) => {
    next(Object.assign(new Error('bad thing'), { status: Number(req.params.code) }));
  });
  app.get('/handled', (req, res, next) => next(new Error('handled it')));
  app.use('/handled', (err, req, res, next) => res.status(422).json({ handled: err.message }));
  app.get('/next-route', (req, res, next) => next('route'), (req, res) => res.send('skipped'));
  app.get('/next-route', (req, res) => res.json({ second: true }));

  // Methods: HEAD through GET, an explicit HEAD, OPTIONS, a route without GET.
  app.route('/multi').get(send).put(send);
  app.post('/only-post', send);
  app.get('/head', (req, res) => res.set('X-Head', '1').send('body text'));
  app.head('/head-explicit', (req, res) => res.set('X-Explicit', '1').end());
  app.get('/head-explicit', send);
  app.options('/opts', (req, res) => res.set('Allow', 'GET, OPTIONS').send('custom'));
  app.get('/opts', send);

  return app;
}

module.exports = { buildExpressApp, SECRET };
