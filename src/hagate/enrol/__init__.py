"""One-scan device enrolment: a one-time link (and its QR code) that the gateway answers with
the right certificate file for the device that opens it."""
