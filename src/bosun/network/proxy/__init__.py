"""The node's service proxy: Services and EndpointSlices to one nftables table, ``ip bosun``.

Split as kube-proxy's nftables proxier is: :mod:`.state` computes the wanted rules (pure),
:mod:`.diff` compares them with what was last committed (pure), :mod:`.apply` sends one
transaction; :mod:`.component` watches the API and runs the three.
"""
