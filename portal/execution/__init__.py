"""Running privacy requests: the manual gate, collection, package assembly, the runner and dispatch.

Nothing here imports Flask views, forms or ``request``: the runner is called with a request id from a
view (inline), a worker task or a test alike.
"""
