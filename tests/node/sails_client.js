// Drives the STOCK sails.io.js 1.2.1 client against a server and prints one JSON line per
// observation. Usage: node sails_client.js <base_url> '<scenario-json>'
//
// scenario: {
//   "sdk": "dist" (default: sails.io.js-dist 1.2.1, the browser bundle with socket.io-client
//          2.0.3, run unchanged in a browser-like global whose WebSocket is the `ws` package)
//        | "node" (require('sails.io.js')(require('socket.io-client@2.0.3')))
//        | "node4" (the same SDK over socket.io-client 4.x, Engine.IO v4; see loadNode),
//   "timeout_ms": 10000,            hard cap for the whole run (exit 1 past it)
//   "step_timeout_ms": 5000,        default cap for each waiting step
//   "headers": {...},               io.sails.headers (sent with every virtual request)
//   "handshake_headers": {...},     headers on the WebSocket upgrade (dist: what a browser
//                                   would add, e.g. Origin, Cookie; node: initialConnectionHeaders)
//   "query": "a=1",                 io.sails.query
//   "reconnection": false,          io.sails.reconnection
//   "wait_connect": true,           wait for 'connect' before the first step
//   "steps": [ ... ]                (the scenario may also be just this list)
// }
// steps (i = index):
//   {"op":"get"|"post"|"put"|"patch"|"delete","url":"/x","data":{...}?}
//   {"op":"request","options":{"method","url","data","headers"}}
//       -> {"step":i,"op":..,"resData":..,"jwres":{"statusCode","headers","body","hasBody","error"?}}
//   {"op":"on","event":"message","count":1}      -> {"step":i,"op":"on","event":..,"data":[...]}
//   {"op":"emit","event":"get","args":[...],"ack":true}  raw socket.io emit (no Sails checks)
//       -> {"step":i,"op":"emit","ack":[...]} (or "sent":true without ack)
//   {"op":"disconnect"} | {"op":"reconnect"} | {"op":"expect_disconnect"} | {"op":"is_connected"}
//   {"op":"sleep","ms":100}
// Spontaneous lines: {"event":"connect"}, {"event":"disconnect","reason":..}, {"event":"sails:parseError",..}
// Last line: {"done":true,...}; exit 0. Any failure: {"error":...}; exit 1.
'use strict';

const fs = require('fs');
const vm = require('vm');
const common = require('./driver_common');

const { baseUrl, scenario } = common.parseArgs("sails_client.js <base_url> '<scenario-json>'");
common.hardTimeout(scenario.timeout_ms || 10000);
const STEP_MS = scenario.step_timeout_ms || 5000;

function loadDist(handshakeHeaders) {
  const WS = require('ws');
  // What a browser's WebSocket does: no options from the page, but the browser adds Origin
  // and cookies to the upgrade request by itself.
  class BrowserWebSocket extends WS {
    constructor(url, protocols) {
      super(url, protocols, { headers: handshakeHeaders });
    }
  }
  const sandbox = {
    console, setTimeout, clearTimeout, setInterval, clearInterval, WebSocket: BrowserWebSocket,
  };
  vm.createContext(sandbox);
  const file = require.resolve('sails.io.js-dist/sails.io.js');
  vm.runInContext(fs.readFileSync(file, 'utf8'), sandbox, { filename: file });
  if (!sandbox.io || !sandbox.io.sails) common.fail('sails.io.js-dist did not define io.sails');
  return sandbox.io;
}

// sails.io.js 1.2.1 keeps a socket's connection options (path, query, transports, ...) in
// non-enumerable accessors and passes the SailsSocket itself as the options of io(url, opts).
// socket.io-client 2 reads them one by one; 4.x's engine copies its options with Object.assign,
// which skips non-enumerable properties, so the SDK would connect to /engine.io/ without its
// __sails_io_sdk_* query and never get an answer. The one adaptation the SDK needs over 4.x:
// hand the client a plain copy of those options. Requests, acks and events are untouched.
const SDK_OPTIONS = [
  'multiplex', 'transports', 'query', 'path', 'reconnection', 'reconnectionAttempts',
  'reconnectionDelay', 'reconnectionDelayMax', 'rejectUnauthorized', 'randomizationFactor',
  'timeout', 'extraHeaders', 'transportOptions',
];
function plainOptionsClient(lookup) {
  const adapted = function io(url, opts) {
    const plain = {};
    for (const name of SDK_OPTIONS) if (opts && opts[name] !== undefined) plain[name] = opts[name];
    return lookup(url, plain);
  };
  return Object.assign(adapted, lookup);
}

function loadNode(handshakeHeaders, clientPackage) {
  let client = require(clientPackage);
  if (clientPackage === 'socket.io-client') client = plainOptionsClient(client);
  const io = require('sails.io.js')(client);
  io.sails.initialConnectionHeaders = handshakeHeaders;
  return io;
}

const sdk = scenario.sdk || 'dist';
const handshakeHeaders = scenario.handshake_headers || {};
const NODE_CLIENTS = { node: 'socket.io-client-v2', node4: 'socket.io-client' };
const io = NODE_CLIENTS[sdk] ? loadNode(handshakeHeaders, NODE_CLIENTS[sdk]) : loadDist(handshakeHeaders);

// Configure before the auto-connect timer (setTimeout 0) fires.
io.sails.url = baseUrl;
io.sails.transports = ['websocket'];
io.sails.environment = 'production';
io.sails.reconnection = !!scenario.reconnection;
if (scenario.headers) io.sails.headers = scenario.headers;
if (scenario.query) io.sails.query = scenario.query;

const inbox = new common.Inbox();
const isError = (x) => Object.prototype.toString.call(x) === '[object Error]';

// Bound before the socket exists, so sails.io.js queues them and re-binds them on every
// (re)connection; listeners added later would be lost by io.socket.reconnect().
io.socket.on('connect', () => {
  common.emit({ event: 'connect' });
  inbox.push('connect', true);
});
io.socket.on('disconnect', (reason) => {
  common.emit({ event: 'disconnect', reason: reason === undefined ? null : reason });
  inbox.push('disconnect', reason === undefined ? null : reason);
});
io.socket.on('sails:parseError', (err) => {
  common.emit({ event: 'sails:parseError', data: err });
  inbox.push('sails:parseError', err);
});
for (const name of common.eventsWaitedFor(scenario.steps)) {
  if (name === 'connect' || name === 'disconnect' || name === 'sails:parseError') continue;
  io.socket.on(name, (data) => inbox.push(name, data === undefined ? null : data));
}

function request(step) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no response for ' + JSON.stringify(step))),
      step.timeout_ms || STEP_MS);
    const cb = (resData, jwres) => {
      clearTimeout(timer);
      if (isError(resData)) resData = { error: resData.message };
      resolve({
        resData: resData === undefined ? null : resData,
        hasResData: resData !== undefined,
        jwres: common.describeJwr(jwres),
      });
    };
    if (step.op === 'request') {
      io.socket.request(step.options, cb);
    } else if (step.data !== undefined) {
      io.socket[step.op](step.url, step.data, cb);
    } else {
      io.socket[step.op](step.url, cb);
    }
  });
}

function rawEmit(step) {
  const raw = io.socket._raw;
  const args = [step.event].concat(step.args || []);
  if (!step.ack) {
    raw.emit.apply(raw, args);
    return Promise.resolve({ sent: true });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no ack for ' + step.event)),
      step.timeout_ms || STEP_MS);
    args.push(function ack() {
      clearTimeout(timer);
      resolve({ ack: Array.prototype.slice.call(arguments) });
    });
    raw.emit.apply(raw, args);
  });
}

// The `ws` object under socket.io-client 2's websocket transport (null if not connected).
function rawWebSocket() {
  const engine = io.socket._raw && io.socket._raw.io && io.socket._raw.io.engine;
  return (engine && engine.transport && engine.transport.ws) || null;
}

async function runStep(step, i) {
  const ms = step.timeout_ms || STEP_MS;
  switch (step.op) {
    case 'get': case 'post': case 'put': case 'patch': case 'delete': case 'request':
      return Object.assign({ step: i, op: step.op }, await request(step));
    case 'on': {
      const event = step.event || 'message';
      return { step: i, op: 'on', event, data: await inbox.take(event, step.count || 1, ms) };
    }
    case 'emit':
      return Object.assign({ step: i, op: 'emit' }, await rawEmit(step));
    case 'disconnect': {
      const ws = rawWebSocket();
      io.socket.disconnect();
      await inbox.take('disconnect', 1, ms);
      await common.waitClosed(ws, ms);
      return { step: i, op: 'disconnect', isConnected: io.socket.isConnected() };
    }
    case 'reconnect':
      io.socket.reconnect();
      await inbox.take('connect', 1, ms);
      return { step: i, op: 'reconnect', isConnected: io.socket.isConnected() };
    case 'expect_disconnect': {
      const [reason] = await inbox.take('disconnect', 1, ms);
      return { step: i, op: 'expect_disconnect', reason };
    }
    case 'is_connected':
      return { step: i, op: 'is_connected', isConnected: io.socket.isConnected() };
    case 'sleep':
      await common.sleep(step.ms || 0);
      return { step: i, op: 'sleep' };
    default:
      throw new Error('unknown op ' + JSON.stringify(step.op));
  }
}

common.runScenario(scenario, inbox, STEP_MS, runStep, () => ({ sdk }));
