"""HTTP/1.1 as pure code over bytes, with no I/O: request and response heads (`heads`), the
target and its path rules (`paths`), body framing (`bodies`) and what a connection carries
after an exchange (`state`). The gateway's connection code drives these; nothing here
imports asyncio."""
