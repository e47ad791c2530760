// grpc_raw.js -- one unary gRPC call with raw request bytes through @grpc/grpc-js (test peer).
//
// usage: node grpc_raw.js <host:port> <"/pkg.Service/Method"> <hex payload | - (raw stdin)>
// Prints {"code": <grpc status>, "details": "...", "len": <response bytes>} and exits 0 when a
// status arrived (whatever it is), 2 on a local error.
'use strict';
const grpc = require('@grpc/grpc-js');

const [addr, method, hex] = process.argv.slice(2);
const client = new grpc.Client(addr, grpc.credentials.createInsecure());
const id = (b) => b;
const deadline = new Date(Date.now() + 10000);
client.makeUnaryRequest(method, id, id, hex === '-' ? require('fs').readFileSync(0) : Buffer.from(hex || '', 'hex'), { deadline }, (err, resp) => {
  const out = err ? { code: err.code, details: err.details, len: 0 }
                  : { code: 0, details: '', len: resp.length };
  console.log(JSON.stringify(out));
  client.close();
  process.exit(0);
});
