// A plain Node `http` server (no framework) for the Python client's tests: keep-alive, chunked
// bodies, a body that dribbles, a connection closed mid-body or without a response, a JSON-seq
// stream that waits for a signal between records, redirects. Listens on 127.0.0.1, port 0,
// prints {"port": N}; stops when stdin closes.
'use strict';
const http = require('http');

const hits = {};
let release = null;  // resolves the /seq stream's wait
let connections = 0;

function json(res, status, value, headers) {
  const body = JSON.stringify(value);
  res.writeHead(status, Object.assign({'Content-Type': 'application/json',
                                       'Content-Length': Buffer.byteLength(body)}, headers || {}));
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const parts = url.pathname.split('/').filter(Boolean);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('latin1');
    switch (parts[0]) {
      case 'hello':
        res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': 5});
        return res.end('hello');
      case 'stats':
        return json(res, 200, {connections});
      case 'method':
        return json(res, 200, {method: req.method, body, auth: req.headers.authorization || null,
                               te: req.headers['transfer-encoding'] || null});
      case 'chunked': {
        res.writeHead(200, {'Content-Type': 'application/octet-stream'});  // no length: chunked
        const n = Number(parts[1] || 10);
        for (let i = 0; i < n; i++) { res.write(Buffer.alloc(1000, 97 + (i % 26))); }
        return res.end();
      }
      case 'dribble': {
        res.writeHead(200, {'Content-Type': 'text/plain'});
        const timer = setInterval(() => res.write('.'), 20);
        res.on('close', () => clearInterval(timer));
        return undefined;
      }
      case 'cut':  // promises 1000 bytes, sends 100, then drops the connection
        res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': 1000});
        res.write(Buffer.alloc(100, 120));
        return setImmediate(() => req.socket.destroy());
      case 'flaky': {  // the first request for a key gets no response at all
        const key = parts[1];
        hits[key] = (hits[key] || 0) + 1;
        if (hits[key] === 1) { return req.socket.destroy(); }
        return json(res, 200, {key, hits: hits[key], method: req.method});
      }
      case 'close-after':  // answers with keep-alive, then closes the idle connection
        res.on('finish', () => setImmediate(() => req.socket.end()));
        return json(res, 200, {ok: true});
      case 'seq': {
        res.writeHead(200, {'Content-Type': 'application/json-seq'});
        res.write('\x1e{"n":1}\n');
        new Promise((resolve) => { release = resolve; }).then(() => {
          res.write('\x1e{"n":2}\n\x1e{"n"');
          setImmediate(() => { res.write(':3}\n'); res.end(); });
        });
        return undefined;
      }
      case 'release':
        if (release) { release(); release = null; }
        return json(res, 200, {released: true});
      case 'redirect': {
        const code = Number(parts[1]);
        const to = url.searchParams.get('to') || '/method';
        res.writeHead(code, {'Location': to, 'Content-Length': 0});
        return res.end();
      }
      default:
        return json(res, 404, {error: 'not found'});
    }
  });
});
server.on('connection', () => { connections += 1; });
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({port: server.address().port}) + '\n');
});
process.stdin.on('end', () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
process.stdin.resume();
