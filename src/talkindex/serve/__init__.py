"""Serving: the FastAPI web app, the MCP server, the loopback file server."""
