"""The web process: app factory, shared layout, portals, health and metrics."""
