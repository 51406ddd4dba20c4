"""Server certificates from an ACME CA (Let's Encrypt) with TLS-ALPN-01, renewed in place."""
