"""bmcd's HTTP layer: the aiohttp application, TLS, routing and rendering."""
