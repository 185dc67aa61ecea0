"""Outbound HTTP, beside the services: the SSRF guard (``url_guard``) and the HTTP client that
connects only where the guard allows (``transport``).

It sits below ``services`` and the webhook dispatcher and imports neither: the services check an
endpoint's URL when it is created, the dispatcher checks it again at every connection, and both
use the one guard (docs/architecture.md).
"""
