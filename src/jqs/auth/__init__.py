"""API keys: their scopes, their secrets, and who a request's key says it is."""
