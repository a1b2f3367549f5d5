"""A Python agent as teams write them: the official `openai` SDK traced by
OpenLLMetry or OpenInference, exporting OTLP/HTTP to perpass, with the
attempt attributes (fleet.*) on one span around each try.

    python openai_agent.py openllmetry|openinference PLAN_JSON

PLAN_JSON: {"endpoint": OTLP base URL, "service": name, "attempts": [
  {"spec": id, "tier": t, "number": n, "outcome": "pass"|"fail",
   "calls": [{"model": m, "stream": bool, "base_url": url} |
             {"model": m, "stream": bool, "base_url": url, "proxy": url} |
             {"model": m, "stream": bool, "azure_endpoint": url, "proxy": url}]}]}
"""
import json
import sys

import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

which, plan = sys.argv[1], json.loads(sys.argv[2])
if which == "openllmetry":
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
elif which == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor
else:
    sys.exit(f"unknown instrumentation {which!r}: openllmetry or openinference")

provider = TracerProvider(resource=Resource.create({"service.name": plan["service"]}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{plan['endpoint']}/v1/traces")))
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument(tracer_provider=provider)
tracer = trace.get_tracer("openai-agent")


def client(call):
    http = openai.DefaultHttpxClient(proxy=call["proxy"]) if "proxy" in call else None
    if "azure_endpoint" in call:
        return openai.AzureOpenAI(azure_endpoint=call["azure_endpoint"], api_key="test", api_version="2024-10-21", http_client=http)
    return openai.OpenAI(base_url=call["base_url"], api_key="test", http_client=http)


def complete(call):
    messages = [{"role": "user", "content": "Make the failing test pass."}]
    if not call["stream"]:
        return client(call).chat.completions.create(model=call["model"], messages=messages).choices[0].message.content
    # include_usage: without it the stream carries no token counts to price.
    chunks = client(call).chat.completions.create(model=call["model"], messages=messages, stream=True, stream_options={"include_usage": True})
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


for a in plan["attempts"]:
    attributes = {"fleet.spec.id": a["spec"], "fleet.spec.tier": a["tier"], "fleet.attempt.number": a["number"]}
    with tracer.start_as_current_span("attempt", attributes=attributes) as span:
        for call in a["calls"]:
            complete(call)
        span.set_attribute("fleet.attempt.outcome", a["outcome"])

provider.shutdown()  # flushes the batch processor
print("sent", sum(len(a["calls"]) for a in plan["attempts"]), "calls")
