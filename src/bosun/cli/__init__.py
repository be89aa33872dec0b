"""The ``bosun`` command line: kubectl-style verbs over the client library, plus the server."""
