"""Developer tools run by ``./dev`` (not part of the installed package)."""
