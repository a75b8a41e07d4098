// The Sails 1.5 reference app of the differential harness, lifted from config only (no api/ or
// config/ files: appPath is an empty temporary directory) with sails-hook-sockets for virtual
// requests. tests/differential/gateway_sails_app.py is the same app on the gateway; the HTTP and
// socket cases in tests/differential/cases.py drive both. Keep the two route tables in step.
'use strict';

const { echo } = require('./differential_echo');

const SECRET = 'harness-secret';

function send(req, res) {
  return res.json(echo(req, { sails: true }));
}

const routes = {
  // Over HTTP Sails' body parser (skipper) is middleware for every route; a virtual request's
  // body is its `data` with no parser at all. The gateway twin registers this one route before
  // its parsers, so the socket cases on it check req.body without a parser.
  '/raw/echo': send,
  '/echo': send,
  '/echo/:id': send,
  'GET /user/:id': send,
  'GET /user/:id/books/:book': send,
  'GET /file/*': send,
  'r|^/re/(\\d+)/(\\w+)$|num,word': send,
  'GET /wants': { fn: send, wantsJSON: true },

  // Sails' default responses.
  'GET /ok': (req, res) => res.ok({ done: true }),
  'GET /ok/empty': (req, res) => res.ok(),
  'GET /ok/string': (req, res) => res.ok('fine'),
  'GET /bad': (req, res) => res.badRequest({ reason: 'missing x' }),
  'GET /bad/empty': (req, res) => res.badRequest(),
  'GET /forbidden': (req, res) => res.forbidden(),
  'GET /notfound': (req, res) => res.notFound(),
  'GET /servererror': (req, res) => res.serverError({ secret: 'not for clients' }),
  'GET /servererror/empty': (req, res) => res.serverError(),
  'GET /throw': () => {
    throw new Error('boom');
  },

  // Plain Express responses through Sails.
  'GET /status/:code': (req, res) => res.sendStatus(Number(req.params.code)),
  'GET /text': (req, res) => res.send('hello'),
  'GET /json-null': (req, res) => res.json(null),
  'GET /json-string': (req, res) => res.json('hi'),
  'GET /typed-stream': (req, res) => {
    // res.status() first: without it Sails' virtual res.write() throws (no statusCode yet)
    res.status(200);
    res.set('Content-Type', 'application/json');
    res.write('{"a":');
    res.end('1}');
  },
  'GET /headers': (req, res) => {
    res.set('X-One', '1');
    res.set({ 'X-Two': '2' });
    res.json({ ok: true });
  },
  'GET /redirect': (req, res) => res.redirect('/target?x=1'),
  'GET /cookies/set': (req, res) => {
    res.cookie('plain', 'v1');
    res.cookie('sig', 'sv', { signed: true });
    res.json({ ok: true });
  },
  'POST /only-post': send,
};

// sails.lift() options: only the hooks that HTTP routes, default responses, the request
// qualifiers and sockets need. Production mode, as a device runs: error replies reveal nothing.
function sailsConfig(appPath) {
  return {
    appPath,
    port: '0', // a string: Sails treats a numeric 0 as "unset" and listens on 1337
    explicitHost: '127.0.0.1',
    environment: 'production',
    log: { level: 'error', noShip: true },
    session: { secret: SECRET }, // the cookie-parser secret (the session hook itself is off)
    hooks: {
      grunt: false, views: false, orm: false, pubsub: false, blueprints: false, i18n: false,
      session: false, security: false, helpers: false, services: false, policies: false,
      sockets: require('sails-hook-sockets'),
    },
    // Accept every origin (production Sails refuses to lift without an origin rule).
    sockets: { beforeConnect: (handshake, cb) => cb(null, true) },
    // The stock middleware minus session (hook off), compress (a deployment choice; the
    // gateway never compresses), www and favicon (no public files).
    http: { middleware: { order: ['cookieParser', 'bodyParser', 'poweredBy', 'router'] } },
    routes,
  };
}

module.exports = { sailsConfig, SECRET };
