"""Running hagate: the one place that starts processes and wires components together.

`gateway` runs `hagate serve` and the gateway inside `hagate connect` (listeners, worker
processes, the event store, the ACME renewer, metrics, alerts and signals); `connect` adds
the connector; `relay` runs `hagate relay run`; `workers` forks and supervises workers;
`pidfile` says where a running gateway is; `site` says what a state directory is for. The
components (gateway/, tunnel/, acme/, watch/) take what they need as arguments.
"""
