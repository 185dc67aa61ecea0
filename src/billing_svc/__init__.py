"""billing-svc: the AS2 platform's internal billing service."""
