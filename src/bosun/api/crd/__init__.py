"""CustomResourceDefinitions: the CRD kind's rules (:mod:`.definition`), the strategy of the
resources they define (:mod:`.version`, with :mod:`.structural` and :mod:`.cel`), and the
controller that serves them in a server's catalog (:mod:`.controller`)."""
