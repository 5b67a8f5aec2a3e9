"""tq over HTTP: front ends beside tq/cli and tq/tui (the JSON API, the console in a browser)."""
