"""The gateway: TLS with client certificates, rules on every request, a proxy to Home Assistant."""
