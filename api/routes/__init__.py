"""One router per capability: asking, the OpenAI-compatible protocol, documents, health."""
