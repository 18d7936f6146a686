#!/usr/bin/env node
// Sends deterministic traces through the official OpenTelemetry JavaScript SDK, as a real,
// third-party OTLP client of tailgate's receivers in its tests (tests/node_sdk.rs).
//
// Usage: node send_spans.mjs PROTOCOL ENDPOINT TRACES SPANS_PER_TRACE COMPRESSION OUT
//   PROTOCOL     grpc (@opentelemetry/exporter-trace-otlp-grpc, on @grpc/grpc-js),
//                http/protobuf (-otlp-proto) or http/json (-otlp-http)
//   ENDPOINT     http://HOST:PORT; "/v1/traces" is appended for the HTTP protocols
//   COMPRESSION  none or gzip
//   OUT          where the JSON of what the exporter was handed goes:
//                {"exported": n, "results": [0 | 1, ...], "spans": [{trace_id, span_id,
//                 parent_span_id, name, kind, status_code, attributes}]}
//
// Spans are made with the SDK's public API: each trace a root span and its children
// (SpanKind SERVER for the root, CLIENT for the others), every tenth trace's root ending in
// status ERROR, attributes of each JavaScript type. The exporter is wrapped so that the spans
// handed to it, and the result of each export call, are recorded exactly.
// Exit codes: 0 every export succeeded; 2 an export failed; 1 usage or other error.

import { writeFileSync } from "node:fs";

import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

const [protocol, endpoint, tracesArg, spansArg, compression, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: send_spans.mjs PROTOCOL ENDPOINT TRACES SPANS_PER_TRACE COMPRESSION OUT");
  process.exit(1);
}
const traces = Number(tracesArg);
const spansPerTrace = Number(spansArg);

async function makeExporter() {
  const config = { compression, timeoutMillis: 10000 };
  switch (protocol) {
    case "grpc": {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-grpc");
      return new OTLPTraceExporter({ url: endpoint, ...config });
    }
    case "http/protobuf": {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
      return new OTLPTraceExporter({ url: `${endpoint}/v1/traces`, ...config });
    }
    case "http/json": {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
      return new OTLPTraceExporter({ url: `${endpoint}/v1/traces`, ...config });
    }
    default:
      throw new Error(`unknown protocol ${protocol}`);
  }
}

const inner = await makeExporter();
const recorded = { exported: 0, results: [], spans: [] };
const exporter = {
  export(spans, done) {
    for (const span of spans) {
      const ids = span.spanContext();
      recorded.spans.push({
        trace_id: ids.traceId,
        span_id: ids.spanId,
        parent_span_id: span.parentSpanContext?.spanId ?? "",
        name: span.name,
        kind: span.kind,
        status_code: span.status.code,
        attributes: span.attributes,
      });
    }
    recorded.exported += spans.length;
    inner.export(spans, (result) => {
      recorded.results.push(result.code);
      if (result.error) {
        console.error(`export failed: ${result.error}`);
      }
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
};

const provider = new TracerProvider({
  resource: resourceFromAttributes({ "service.name": "node-client", "test.protocol": protocol }),
  spanProcessors: [new BatchSpanProcessor({ exporter, maxExportBatchSize: 64, scheduledDelayMillis: 50 })],
});
const tracer = provider.getTracer("tailgate-tests", "1.0.0");

for (let t = 0; t < traces; t++) {
  const root = tracer.startSpan(`trace-${t}`, {
    kind: SpanKind.SERVER,
    attributes: { "test.trace_index": t, "test.ratio": t / 4, "test.even": t % 2 === 0 },
  });
  const parent = trace.setSpan(context.active(), root);
  for (let s = 1; s < spansPerTrace; s++) {
    const child = tracer.startSpan(
      `trace-${t}-child-${s}`,
      { kind: SpanKind.CLIENT, attributes: { "test.child": s, "test.tags": ["a", "b"] } },
      parent,
    );
    child.addEvent("step", { "test.step": s });
    child.end();
  }
  if (t % 10 === 9) {
    root.setStatus({ code: SpanStatusCode.ERROR, message: "failed on purpose" });
  }
  root.end();
}

await provider.forceFlush();
await provider.shutdown();
writeFileSync(out, JSON.stringify(recorded));
const failed = recorded.results.some((code) => code !== 0);
process.exit(failed ? 2 : 0);
