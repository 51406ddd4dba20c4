"""Fronts: TCP proxies before the gateway or the relay that pass TLS through untouched
(Tailscale Funnel, HAProxy, nginx's stream module, a cloud load balancer) and tell the
client's address with a PROXY protocol header, believed from trusted addresses only."""
