"""The node agent: registers a Node, runs the pods bound to it through a runtime driver."""
