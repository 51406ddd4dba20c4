"""hagate as a Home Assistant app (add-on): the options form, and the start that turns it
into hagate.yaml and runs the gateway."""
