// A real Sails 1.5 app (sails + sails-hook-sockets) for the Python client's tests: lifted lean
// (no grunt, views, orm, session, i18n, ...) on 127.0.0.1 and a free port, it prints
// {"port": N} once listening, and serves a few routes over HTTP and virtual requests.
// Usage: node sails_app.js   (stops on SIGTERM or when stdin closes)
'use strict';
const path = require('path');
const Sails = require('sails').constructor;

const app = new Sails();
let port = 0;

const routes = {
  'GET /hello': (req, res) => res.send('hello'),
  'GET /user/:id': (req, res) => res.json({
    id: req.param('id'), isSocket: req.isSocket, wantsJSON: req.wantsJSON,
    query: req.query, header: req.get('x-test') || null, auth: req.get('authorization') || null,
  }),
  'POST /echo': (req, res) => res.json({method: req.method, body: req.body, isSocket: req.isSocket,
                                        header: req.get('x-test') || null}),
  'PUT /echo': (req, res) => res.json({method: req.method, body: req.body}),
  'PATCH /echo': (req, res) => res.json({method: req.method, body: req.body}),
  'DELETE /echo': (req, res) => res.json({method: req.method, body: req.body}),
  'GET /status/:code': (req, res) => res.status(Number(req.param('code'))).json({code: Number(req.param('code'))}),
  'GET /forbidden': (req, res) => res.forbidden(),
  'POST /join/:room': (req, res) => {
    if (!req.isSocket) { return res.badRequest(); }
    app.sockets.join(req, req.param('room'));
    return res.json({joined: req.param('room'), id: app.sockets.getId(req)});
  },
  'POST /broadcast/:room': (req, res) => {
    app.sockets.broadcast(req.param('room'), 'news', req.body || {});
    return res.json({sent: true});
  },
  'POST /blast': (req, res) => {
    app.sockets.blast('message', req.body || {});
    return res.json({sent: true});
  },
  'GET /slow': (req, res) => setTimeout(() => res.json({slow: true}), 200),
};

app.lift({
  appPath: __dirname,  // userhooks finds sails-hook-sockets in ./node_modules
  port: '0',  // a string: Sails treats a numeric 0 as unset (1337)
  explicitHost: '127.0.0.1',
  environment: 'development',
  log: {level: 'warn'},
  hooks: {
    grunt: false, views: false, orm: false, blueprints: false, session: false, i18n: false,
    policies: false, pubsub: false, services: false, helpers: false, userconfig: false,
    security: false,
  },
  globals: false,
  routes,
  sockets: {onlyAllowOrigins: undefined},
}, (err) => {
  if (err) { console.error(String(err && err.stack || err)); process.exit(1); }
  port = app.hooks.http.server.address().port;
  process.stdout.write(JSON.stringify({port}) + '\n');
});

function stop() { app.lower(() => process.exit(0)); }
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
