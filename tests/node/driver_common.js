// Shared plumbing for the client drivers run by the Python tests: argument parsing, one JSON
// line per observation on stdout, a hard overall timeout, and a buffered event inbox so that a
// server push arriving before its "on" step is not lost. Never prints anything but JSON lines.
'use strict';

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function parseArgs(usage) {
  const [baseUrl, scenarioText] = process.argv.slice(2);
  if (!baseUrl || scenarioText === undefined) {
    emit({ error: 'usage: ' + usage });
    process.exit(2);
  }
  let scenario;
  try {
    scenario = JSON.parse(scenarioText);
  } catch (e) {
    emit({ error: 'scenario is not JSON: ' + e.message });
    process.exit(2);
  }
  if (Array.isArray(scenario)) scenario = { steps: scenario };
  scenario.steps = scenario.steps || [];
  return { baseUrl: baseUrl.replace(/\/+$/, ''), scenario };
}

// Exit 1 with an error line if the whole run takes longer than `ms`.
function hardTimeout(ms) {
  return setTimeout(() => {
    emit({ error: 'timeout', timeout_ms: ms });
    process.exit(1);
  }, ms);
}

function fail(message, extra) {
  emit(Object.assign({ error: message }, extra || {}));
  process.exit(1);
}

// Buffers occurrences of named events; take(name, count, ms) resolves with `count` payloads.
class Inbox {
  constructor() {
    this.buffers = new Map();
    this.waiters = new Map();
  }
  push(name, value) {
    if (!this.buffers.has(name)) this.buffers.set(name, []);
    this.buffers.get(name).push(value);
    const waiter = this.waiters.get(name);
    if (waiter && this.buffers.get(name).length >= waiter.count) {
      this.waiters.delete(name);
      clearTimeout(waiter.timer);
      waiter.resolve(this.buffers.get(name).splice(0, waiter.count));
    }
  }
  take(name, count, ms) {
    const buf = this.buffers.get(name) || [];
    if (buf.length >= count) return Promise.resolve(buf.splice(0, count));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(name);
        reject(new Error('timed out waiting for ' + count + ' x ' + JSON.stringify(name)));
      }, ms);
      this.waiters.set(name, { count, resolve, timer });
    });
  }
  // Whatever arrived and was never taken (printed at the end, for debugging).
  leftovers() {
    const out = {};
    for (const [name, buf] of this.buffers) if (buf.length) out[name] = buf;
    return out;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Names of the events that "on" steps wait for, so listeners exist before any step runs.
function eventsWaitedFor(steps) {
  const names = new Set();
  for (const step of steps) if (step.op === 'on') names.add(step.event || 'message');
  return names;
}

// Resolve once a `ws` WebSocket has finished its closing handshake (or after `ms`), so the
// process does not exit while the last frames (e.g. "41") are still in its send buffer.
function waitClosed(ws, ms) {
  return new Promise((resolve) => {
    if (!ws || ws.readyState === 3) return resolve();
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    if (typeof ws.once === 'function') ws.once('close', done);
    else ws.addEventListener('close', done);
  });
}

// A JWR (or the thing a callback got instead) in a JSON-safe form.
function describeJwr(jwres) {
  if (!jwres || typeof jwres !== 'object') return jwres === undefined ? null : jwres;
  const out = {
    statusCode: jwres.statusCode,
    headers: jwres.headers,
    body: jwres.body === undefined ? null : jwres.body,
    hasBody: jwres.body !== undefined,
  };
  if (jwres.error) out.error = String(jwres.error.message || jwres.error);
  return out;
}

// Both drivers: wait for the connect (unless told not to), run the steps in order emitting
// each result, then emit {done: true, ...doneExtra(), leftovers} and exit; any error fails.
async function runScenario(scenario, inbox, stepMs, runStep, doneExtra, finish) {
  try {
    if (scenario.wait_connect !== false) await inbox.take('connect', 1, stepMs);
    for (let i = 0; i < scenario.steps.length; i++) {
      emit(await runStep(scenario.steps[i], i));
    }
    emit({ done: true, ...doneExtra(), leftovers: inbox.leftovers() });
    if (finish) finish();
    process.exit(0);
  } catch (e) {
    fail(e.message);
  }
}

module.exports = {
  emit, parseArgs, hardTimeout, fail, Inbox, sleep, eventsWaitedFor, describeJwr, waitClosed,
  runScenario,
};
