"""The console: a web page and a JSON API to watch and run hagate (docs/console.md).

access (who may sign in) and limits are pure or SQLite only; views read and changes write
through the other components; web is the aiohttp application; listener serves it on the admin
listener and on the Unix socket the gateway passes admin certificates' requests to."""
