// The echo of the request API that the reference apps of the differential harness send back
// (tests/differential/echo.py builds the same document from the gateway's Request). Every field
// is computed on its own: an API that throws gives "<error Name: message>" for that field only.
// undefined becomes null, so a missing value reads the same as the gateway's None.
'use strict';

// Header names read with req.get(); the Referer/Referrer pair and Host/Content-Type are the
// single-value fields whose duplicates Node drops.
const GET_FIELDS = [
  'Referer', 'Referrer', 'Host', 'Content-Type', 'Content-Length', 'Accept', 'Cookie',
  'X-Custom', 'X-Requested-With', 'User-Agent', 'Origin', 'Accept-Language',
];
// Names looked up with req.param() (or its Express 4 equivalent).
const PARAM_NAMES = ['id', 'q', 'a', 'shopId', 'name'];

function safe(fn) {
  try {
    const value = fn();
    return value === undefined ? null : value;
  } catch (e) {
    return '<error ' + (e && e.name) + ': ' + (e && e.message) + '>';
  }
}

// Express 4's req.param (removed in Express 5): params, then body, then query.
function express4Param(req, name) {
  const params = req.params || {};
  const body = req.body || {};
  const query = req.query || {};
  if (params[name] != null && Object.prototype.hasOwnProperty.call(params, name)) return params[name];
  if (body[name] != null) return body[name];
  if (query[name] != null) return query[name];
  return undefined;
}

function routePath(req) {
  if (!req.route) return null;
  const p = req.route.path;
  return typeof p === 'string' ? p : String(p);
}

// The common part: Express 5 and Sails (whose HTTP requests are Express 4 requests).
function echo(req, { sails = false } = {}) {
  const get = {};
  for (const field of GET_FIELDS) get[field] = safe(() => req.get(field));
  const param = {};
  for (const name of PARAM_NAMES) {
    param[name] = safe(() => (sails ? req.param(name) : express4Param(req, name)));
  }
  const out = {
    method: safe(() => req.method),
    url: safe(() => req.url),
    originalUrl: safe(() => req.originalUrl),
    baseUrl: safe(() => req.baseUrl),
    path: safe(() => req.path),
    params: safe(() => Object.assign({}, req.params)),
    query: safe(() => req.query),
    cookies: safe(() => req.cookies),
    signedCookies: safe(() => req.signedCookies),
    body: safe(() => req.body),
    headers: safe(() => req.headers),
    get,
    is: {
      json: safe(() => req.is('json')),
      html: safe(() => req.is('html')),
      urlencoded: safe(() => req.is('urlencoded')),
      textAny: safe(() => req.is('text/*')),
      jsonOrForm: safe(() => req.is(['json', 'urlencoded'])),
      plusJson: safe(() => req.is('+json')),
    },
    accepts: safe(() => req.accepts()),
    acceptsJsonHtml: safe(() => req.accepts(['json', 'html'])),
    acceptsHtml: safe(() => req.accepts('html')),
    acceptsText: safe(() => req.accepts('text/plain')),
    param,
    hostname: safe(() => req.hostname),
    protocol: safe(() => req.protocol),
    xhr: safe(() => req.xhr),
    secure: safe(() => req.secure),
    ip: safe(() => req.ip),
    route: safe(() => routePath(req)),
  };
  if (sails) {
    // Sails' qualifiers are truthy/falsy values (wantsJSON may be the Accept string); the
    // gateway promises the truth value, so that is what is compared.
    out.wantsJSON = safe(() => Boolean(req.wantsJSON));
    out.isSocket = safe(() => Boolean(req.isSocket));
    out.allParams = safe(() => req.allParams());
    out.explicitlyAcceptsHTML = safe(() => Boolean(req.explicitlyAcceptsHTML));
  }
  return out;
}

module.exports = { echo, safe, GET_FIELDS, PARAM_NAMES };
