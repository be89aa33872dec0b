"""Kubernetes' CEL extension libraries (:mod:`.registry` registers them; one module per
library). This module is kept free of the ``cel`` package so that what only needs the names
(the check of undeclared references) does not load the interpreter."""

# The prefixes of namespaced functions (``format.dns1123Label()``, ``ip.isCanonical()``,
# ``strings.quote()``, ``sets.contains()``): they read as variables to the parser.
NAMESPACES = frozenset({"format", "ip", "strings", "sets"})
