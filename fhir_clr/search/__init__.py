"""SearchParameter registry, index value extraction and query parsing."""
