"""hagate's own certificate authority: client certificates, PKCS#12 bundles, revocation."""
