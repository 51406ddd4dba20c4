"""Home Assistant credentials bound to the certificate that earned them."""
