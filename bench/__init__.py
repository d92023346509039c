"""`make bench`: side-by-side measurements of the gateway, written to bench/results.json."""
