#!/usr/bin/env node
/*
 * sigv4-proxy.js -- a strict AWS Signature V4 verifying reverse proxy for tests, put in front
 * of s3rver (which checks only the shape of SigV4 headers, never the signature).
 *
 * For every request it:
 *   - parses "Authorization: AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request,
 *     SignedHeaders=..., Signature=..." (403 AccessDenied when absent or malformed);
 *   - requires the access key to be the configured one (403 InvalidAccessKeyId), the scope to
 *     name the configured region and service s3, host to be a signed header;
 *   - requires x-amz-date within 15 minutes of now (403 RequestTimeTooSkewed) and matching the
 *     credential date;
 *   - requires x-amz-content-sha256 (400 InvalidRequest); when it is a hex hash it must equal
 *     the SHA-256 of the body (400 XAmzContentSHA256Mismatch, as AWS answers);
 *   - rebuilds the canonical request with the AWS SDK's own @smithy/signature-v4
 *     (uriEscapePath false: S3 signs the path as sent) and compares signatures
 *     (403 SignatureDoesNotMatch);
 * then forwards the request to the upstream (path style; a virtual-hosted request
 * "bucket.host" is rewritten to "/bucket/..." for s3rver) and relays the answer.
 *
 * Test-only fault injection (--faults): object keys containing
 *   "fault-503-"       get 503 SlowDown on the first 2 attempts of each distinct request,
 *   "fault-drop-"      have the connection destroyed without an answer on the first attempt,
 *   "fault-always500-" always get 500 InternalError whose message counts the attempts,
 *   "fault-partfail-"  always get 500 InternalError for UploadPart number 2.
 *
 * Usage: node sigv4-proxy.js --port P --upstream-port U [--access-key AK] [--secret SK]
 *          [--region R] [--faults] [--log FILE]
 * Prints "listening <port>" on stdout once ready. Loopback only.
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const NM = path.join(__dirname, '..', 'node', 'node_modules');
const { SignatureV4, createScope } = require(path.join(NM, '@smithy', 'signature-v4'));
const { Sha256 } = require(path.join(NM, '@aws-crypto', 'sha256-js'));

const opt = { port: 0, upstreamPort: 0, accessKey: 'S3RVER', secret: 'S3RVER',
              region: 'us-east-1', faults: false, log: null };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const next = () => process.argv[++i];
  if (a === '--port') opt.port = Number(next());
  else if (a === '--upstream-port') opt.upstreamPort = Number(next());
  else if (a === '--access-key') opt.accessKey = next();
  else if (a === '--secret') opt.secret = next();
  else if (a === '--region') opt.region = next();
  else if (a === '--faults') opt.faults = true;
  else if (a === '--log') opt.log = next();
  else { console.error('unknown argument ' + a); process.exit(2); }
}
if (!opt.upstreamPort) { console.error('--upstream-port is required'); process.exit(2); }

const MAX_BODY = 256 * 1024 * 1024;
const SKEW_MS = 15 * 60 * 1000;
const logStream = opt.log ? fs.createWriteStream(opt.log, { flags: 'a' }) : null;
const attempts = new Map();

const signer = new SignatureV4({
  service: 's3', region: opt.region, sha256: Sha256, uriEscapePath: false,
  applyChecksum: false,
  credentials: { accessKeyId: opt.accessKey, secretAccessKey: opt.secret },
});

function xmlEsc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fail(req, res, status, code, message) {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code +
    '</Code><Message>' + xmlEsc(message) + '</Message><RequestId>sigv4-proxy</RequestId></Error>';
  res.writeHead(status, { 'Content-Type': 'application/xml',
                          'Content-Length': Buffer.byteLength(body) });
  res.end(body);
  logLine(req, status, code);
}

function logLine(req, status, note) {
  if (logStream) logStream.write(req.method + ' ' + req.url + ' ' + status +
                                 (note ? ' ' + note : '') + '\n');
}

function parseQuery(raw) {
  const q = {};
  if (!raw) return q;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (k in q) q[k] = [].concat(q[k], v);
    else q[k] = v;
  }
  return q;
}

function parseAuth(h) {
  const m = /^AWS4-HMAC-SHA256 (.*)$/.exec(h || '');
  if (!m) return null;
  const parts = {};
  for (const kv of m[1].split(',')) {
    const s = kv.trim();
    const eq = s.indexOf('=');
    if (eq > 0) parts[s.slice(0, eq)] = s.slice(eq + 1);
  }
  if (!parts.Credential || !parts.SignedHeaders || !parts.Signature) return null;
  const cred = parts.Credential.split('/');
  if (cred.length !== 5) return null;
  return { accessKey: cred[0], date: cred[1], region: cred[2], service: cred[3],
           term: cred[4], signed: parts.SignedHeaders.split(';'), signature: parts.Signature };
}

function amzDateMs(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

// Fault injection by key name; returns true when the request was answered here.
function injectFault(req, res, rawPath) {
  if (!opt.faults) return false;
  const id = req.method + ' ' + req.url;
  const n = (attempts.get(id) || 0) + 1;
  attempts.set(id, n);
  if (rawPath.includes('fault-503-') && n <= 2) {
    fail(req, res, 503, 'SlowDown', 'Please reduce your request rate (injected, attempt ' + n + ')');
    return true;
  }
  if (rawPath.includes('fault-drop-') && n <= 1) {
    logLine(req, 0, 'dropped');
    req.socket.destroy();
    return true;
  }
  if (rawPath.includes('fault-partfail-') && /(^|&)partNumber=2(&|$)/.test(req.url.split('?')[1] || '')) {
    fail(req, res, 500, 'InternalError', 'injected part failure #' + n);
    return true;
  }
  if (rawPath.includes('fault-always500-')) {
    fail(req, res, 500, 'InternalError', 'injected failure #' + n);
    return true;
  }
  return false;
}

async function handle(req, res, body) {
  const qi = req.url.indexOf('?');
  const rawPath = qi < 0 ? req.url : req.url.slice(0, qi);
  const rawQuery = qi < 0 ? '' : req.url.slice(qi + 1);

  const auth = parseAuth(req.headers['authorization']);
  if (!auth) return fail(req, res, 403, 'AccessDenied', 'Missing or malformed SigV4 Authorization');
  if (auth.accessKey !== opt.accessKey) {
    return fail(req, res, 403, 'InvalidAccessKeyId',
                'The AWS Access Key Id you provided does not exist in our records.');
  }
  if (auth.region !== opt.region || auth.service !== 's3' || auth.term !== 'aws4_request') {
    return fail(req, res, 403, 'AuthorizationHeaderMalformed',
                'The authorization header is malformed; the scope is wrong: ' +
                [auth.date, auth.region, auth.service, auth.term].join('/'));
  }
  if (!auth.signed.includes('host')) {
    return fail(req, res, 403, 'AccessDenied', 'host must be a signed header');
  }
  const amzDate = req.headers['x-amz-date'];
  const t = amzDateMs(amzDate);
  if (isNaN(t) || !auth.signed.includes('x-amz-date')) {
    return fail(req, res, 403, 'AccessDenied', 'x-amz-date is missing, unsigned or malformed');
  }
  if (Math.abs(Date.now() - t) > SKEW_MS) {
    return fail(req, res, 403, 'RequestTimeTooSkewed',
                'The difference between the request time and the current time is too large.');
  }
  if (amzDate.slice(0, 8) !== auth.date) {
    return fail(req, res, 403, 'SignatureDoesNotMatch', 'credential date differs from x-amz-date');
  }
  const payloadHash = req.headers['x-amz-content-sha256'];
  if (!payloadHash) {
    return fail(req, res, 400, 'InvalidRequest',
                'Missing required header for this request: x-amz-content-sha256');
  }
  if (/^[0-9a-f]{64}$/.test(payloadHash)) {
    const actual = crypto.createHash('sha256').update(body).digest('hex');
    if (actual !== payloadHash) {
      return fail(req, res, 400, 'XAmzContentSHA256Mismatch',
                  'The provided x-amz-content-sha256 header does not match what was computed.');
    }
  } else if (payloadHash !== 'UNSIGNED-PAYLOAD') {
    return fail(req, res, 400, 'InvalidArgument', 'x-amz-content-sha256 must be a hex SHA-256 ' +
                'or UNSIGNED-PAYLOAD');
  }

  const headers = {};
  for (const name of auth.signed) {
    const v = req.headers[name];
    if (v === undefined) {
      return fail(req, res, 403, 'SignatureDoesNotMatch', 'signed header ' + name + ' not sent');
    }
    headers[name] = String(v).trim().replace(/\s+/g, ' ');
  }
  let query;
  try {
    query = parseQuery(rawQuery);
  } catch (e) {
    return fail(req, res, 400, 'InvalidArgument', 'bad query encoding');
  }
  const canon = signer.createCanonicalRequest({ method: req.method, path: rawPath, query },
                                              headers, payloadHash);
  const scope = createScope(auth.date, auth.region, 's3');
  const key = signer.getSigningKey({ accessKeyId: opt.accessKey, secretAccessKey: opt.secret },
                                   auth.region, auth.date, 's3');
  const expected = await signer.getSignature(amzDate, scope, key, canon);
  if (expected !== auth.signature) {
    return fail(req, res, 403, 'SignatureDoesNotMatch',
                'The request signature we calculated does not match the signature you ' +
                'provided. Check your key and signing method.');
  }
  if (injectFault(req, res, rawPath)) return;

  // Virtual-hosted style: bucket is the first label of the Host name.
  let upPath = req.url;
  const hostname = String(req.headers.host || '').replace(/:\d+$/, '');
  if (hostname && !/^[\d.]+$/.test(hostname) && hostname !== 'localhost' &&
      hostname.includes('.') && !hostname.startsWith('[')) {
    upPath = '/' + hostname.split('.')[0] + (req.url.startsWith('/') ? req.url : '/' + req.url);
    if (upPath.endsWith('/') && rawPath === '/') upPath = upPath.slice(0, -1);
    upPath = upPath.replace(/\/\?/, '?');
  }
  const fwd = Object.assign({}, req.headers);
  delete fwd.expect;
  fwd.host = '127.0.0.1:' + opt.upstreamPort;
  fwd['content-length'] = String(body.length);
  delete fwd['transfer-encoding'];
  const up = http.request({ host: '127.0.0.1', port: opt.upstreamPort, method: req.method,
                            path: upPath, headers: fwd }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
    logLine(req, ur.statusCode, null);
  });
  up.on('error', (e) => fail(req, res, 502, 'BadGateway', 'upstream: ' + e.message));
  up.end(body);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) tooBig = true;
    else chunks.push(c);
  });
  req.on('end', () => {
    if (tooBig) return fail(req, res, 400, 'EntityTooLarge', 'body too large for the test proxy');
    handle(req, res, Buffer.concat(chunks)).catch((e) => {
      fail(req, res, 500, 'InternalError', 'proxy: ' + (e && e.stack || e));
    });
  });
});
server.keepAliveTimeout = 30000;
server.listen(opt.port, '127.0.0.1', () => {
  process.stdout.write('listening ' + server.address().port + '\n');
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}
