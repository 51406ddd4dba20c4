"""The tunnel: a relay that routes raw TLS by SNI, and a connector that dials out from home."""
