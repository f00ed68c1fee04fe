"""JSON-RPC 2.0 for meshd: the sans-IO codec, the method table and the server."""
