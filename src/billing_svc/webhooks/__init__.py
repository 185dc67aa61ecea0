"""The webhook notifier: Standard Webhooks signing, the SSRF guard, and the outbox dispatcher."""
