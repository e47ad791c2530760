// otlp_traces.js -- send spans with the real OpenTelemetry JS SDK exporters (test peer).
//
// usage: node otlp_traces.js <grpc|proto|json> <url> <service> <nspans> [gzip]
//   grpc  url http://127.0.0.1:PORT        (OTLPTraceExporter from exporter-trace-otlp-grpc)
//   proto url http://127.0.0.1:PORT/v1/traces  (exporter-trace-otlp-proto)
//   json  url http://127.0.0.1:PORT/v1/traces  (exporter-trace-otlp-http)
// Creates one trace: a root span "root-op" with nspans-1 children (attribute i=<n>), exports
// them with a BatchSpanProcessor, and prints {"traceId": "...", "spanIds": [...], "ok": bool}.
'use strict';
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const api = require('@opentelemetry/api');
const { CompressionAlgorithm } = require('@opentelemetry/otlp-exporter-base');

async function main() {
  const [kind, url, service, nstr, comp] = process.argv.slice(2);
  const n = parseInt(nstr || '3', 10);
  const opts = { url };
  if (comp === 'gzip') opts.compression = CompressionAlgorithm.GZIP;
  let Exporter;
  if (kind === 'grpc') Exporter = require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter;
  else if (kind === 'proto') Exporter = require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter;
  else Exporter = require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter;
  const exporter = new Exporter(opts);
  let ok = true;
  const origExport = exporter.export.bind(exporter);
  exporter.export = (spans, cb) => origExport(spans, (res) => {
    if (res.code !== 0) { ok = false; console.error('export failed', res.error && res.error.message); }
    cb(res);
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'deployment.environment': 'test' }),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 512, scheduledDelayMillis: 100 })],
  });
  const tracer = provider.getTracer('obs-test', '1.0.0');
  const spanIds = [];
  const t0 = Date.now();
  const root = tracer.startSpan('root-op', { kind: api.SpanKind.SERVER, startTime: t0,
                                             attributes: { 'http.method': 'GET', 'peer.kind': kind } });
  const ctx = api.trace.setSpan(api.context.active(), root);
  for (let i = 1; i < n; i++) {
    const s = tracer.startSpan('child-' + i, { startTime: t0 + i, attributes: { i: i, 'child.flag': true } }, ctx);
    if (i === 1) s.setStatus({ code: api.SpanStatusCode.ERROR, message: 'boom' });
    s.addEvent('ev', { k: 'v' }, t0 + i);
    s.end(t0 + i + 5);
    spanIds.push(s.spanContext().spanId);
  }
  root.end(t0 + 1500);
  spanIds.unshift(root.spanContext().spanId);
  await provider.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ traceId: root.spanContext().traceId, spanIds, ok }));
  process.exit(ok ? 0 : 1);
}
main().catch((e) => { console.error(e); process.exit(2); });
