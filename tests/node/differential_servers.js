// Starts the two reference servers of the differential harness in one process: the Express 5
// app and the lifted Sails 1.5 app, each on 127.0.0.1 and a port the OS picks. Prints ONE JSON
// line, {"express": port, "sails": port} (or {"error": ...} and exit 1), then serves until its
// stdin closes. Sails gets an empty temporary appPath (removed at exit): nothing is written
// anywhere else. Usage: node differential_servers.js
'use strict';

process.env.NODE_ENV = 'production'; // before Express/Sails read it: what a device runs

const fs = require('fs');
const os = require('os');
const path = require('path');

function fail(message) {
  process.stdout.write(JSON.stringify({ error: message }) + '\n');
  process.exit(1);
}

// stdout carries the one ready line: whatever the servers log goes to stderr (Sails' logger
// prints blank lines through console.log even at level "error").
console.log = console.info = console.debug = console.error;

let modules;
try {
  modules = {
    express: require('./differential_express'),
    sails: require('./differential_sails'),
    Sails: require('sails').constructor,
  };
} catch (e) {
  fail('cannot load the reference servers (run `npm ci` in tests/node): ' + e.message);
}

const appPath = fs.mkdtempSync(path.join(os.tmpdir(), 'differential-sails-'));
const cleanup = () => fs.rmSync(appPath, { recursive: true, force: true });
process.on('exit', cleanup);
process.chdir(appPath); // Sails resolves relative paths from the working directory

function listenExpress() {
  return new Promise((resolve, reject) => {
    const server = modules.express.buildExpressApp().listen(0, '127.0.0.1', (err) => {
      if (err) reject(err);
      else resolve(server.address().port);
    });
    server.on('error', reject);
  });
}

function liftSails() {
  return new Promise((resolve, reject) => {
    const sails = new modules.Sails();
    sails.lift(modules.sails.sailsConfig(appPath), (err) => {
      if (err) reject(err);
      else resolve(sails.hooks.http.server.address().port);
    });
  });
}

(async () => {
  const timer = setTimeout(() => fail('the reference servers did not start within 20 s'), 20000);
  try {
    const [expressPort, sailsPort] = await Promise.all([listenExpress(), liftSails()]);
    clearTimeout(timer);
    process.stdout.write(JSON.stringify({ express: expressPort, sails: sailsPort }) + '\n');
  } catch (e) {
    fail('a reference server failed to start: ' + (e && (e.stack || e.message || e)));
  }
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
})();
