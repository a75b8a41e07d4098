// Drives the stock socket.io-client 4.x (Engine.IO v4, websocket transport only) against a
// server and prints one JSON line per observation.
// Usage: node sio4_client.js <base_url> '<scenario-json>'
//
// scenario: {
//   "namespace": "/",              connect to base_url + namespace
//   "path": "/socket.io",
//   "auth": {...}, "query": {...}, "extra_headers": {...} (upgrade request headers),
//   "timeout_ms": 10000, "step_timeout_ms": 5000,
//   "reconnection": false,
//   "wait_connect": true,          wait for 'connect' (or fail on 'connect_error') first
//   "steps": [ ... ]               (the scenario may also be just this list)
// }
// steps (i = index):
//   {"op":"emit","event":"x","args":[...],"ack":true}   -> {"step":i,"op":"emit","ack":[...]}
//   {"op":"request","method":"get","url":"/x","data":{},"headers":{}}  a Sails virtual request
//       as sails.io.js sends it -> {"step":i,"op":"request","resData":..,"jwres":{...}}
//   {"op":"on","event":"message","count":1}   -> {"step":i,"op":"on","event":..,"data":[[args...]]}
//   {"op":"disconnect"} | {"op":"connect"} | {"op":"expect_disconnect"} | {"op":"is_connected"}
//   {"op":"expect_connect_error"}             -> {"step":i,...,"message":..}
//   {"op":"sleep","ms":100}
// Spontaneous lines: {"event":"connect","id":..}, {"event":"disconnect","reason":..},
// {"event":"connect_error","message":..}, {"event":"ping"}. Last: {"done":true}; exit 0.
'use strict';

const { io } = require('socket.io-client');
const common = require('./driver_common');

const { baseUrl, scenario } = common.parseArgs("sio4_client.js <base_url> '<scenario-json>'");
common.hardTimeout(scenario.timeout_ms || 10000);
const STEP_MS = scenario.step_timeout_ms || 5000;

const socket = io(baseUrl + (scenario.namespace || '/'), {
  path: scenario.path || '/socket.io',
  transports: ['websocket'],
  reconnection: !!scenario.reconnection,
  auth: scenario.auth,
  query: scenario.query,
  extraHeaders: scenario.extra_headers,
});

const inbox = new common.Inbox();
socket.on('connect', () => {
  common.emit({ event: 'connect', id: socket.id });
  inbox.push('connect', socket.id);
});
socket.on('connect_error', (err) => {
  common.emit({ event: 'connect_error', message: err.message });
  inbox.push('connect_error', err.message);
});
socket.on('disconnect', (reason) => {
  common.emit({ event: 'disconnect', reason });
  inbox.push('disconnect', reason);
});
socket.io.on('ping', () => {
  common.emit({ event: 'ping' });
  inbox.push('ping', true);
});
socket.onAny((event, ...args) => inbox.push(event, args));

function emitWithAck(event, args, ms) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...ackArgs) => {
      if (err) reject(new Error('no ack for ' + event));
      else resolve(ackArgs);
    });
  });
}

async function runStep(step, i) {
  const ms = step.timeout_ms || STEP_MS;
  switch (step.op) {
    case 'emit':
      if (!step.ack) {
        socket.emit(step.event, ...(step.args || []));
        return { step: i, op: 'emit', sent: true };
      }
      return { step: i, op: 'emit', ack: await emitWithAck(step.event, step.args || [], ms) };
    case 'request': {
      const method = (step.method || 'get').toLowerCase();
      const msg = { method, headers: step.headers || {}, data: step.data || {}, url: step.url };
      const [jwr] = await emitWithAck(method, [msg], ms);
      return {
        step: i, op: 'request',
        resData: jwr && jwr.body !== undefined ? jwr.body : null,
        jwres: common.describeJwr(jwr),
      };
    }
    case 'on': {
      const event = step.event || 'message';
      return { step: i, op: 'on', event, data: await inbox.take(event, step.count || 1, ms) };
    }
    case 'disconnect': {
      const engine = socket.io.engine;
      const ws = engine && engine.transport && engine.transport.ws;
      socket.disconnect();
      await inbox.take('disconnect', 1, ms);
      await common.waitClosed(ws, ms);
      return { step: i, op: 'disconnect', connected: socket.connected };
    }
    case 'connect':
      socket.connect();
      await inbox.take('connect', 1, ms);
      return { step: i, op: 'connect', connected: socket.connected };
    case 'expect_disconnect': {
      const [reason] = await inbox.take('disconnect', 1, ms);
      return { step: i, op: 'expect_disconnect', reason };
    }
    case 'expect_connect_error': {
      const [message] = await inbox.take('connect_error', 1, ms);
      return { step: i, op: 'expect_connect_error', message };
    }
    case 'is_connected':
      return { step: i, op: 'is_connected', connected: socket.connected };
    case 'sleep':
      await common.sleep(step.ms || 0);
      return { step: i, op: 'sleep', connected: socket.connected };
    default:
      throw new Error('unknown op ' + JSON.stringify(step.op));
  }
}

common.runScenario(scenario, inbox, STEP_MS, runStep, () => ({}), () => socket.close());
