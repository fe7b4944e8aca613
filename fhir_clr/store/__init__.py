"""Storage port and adapters (embedded SQLite default, MongoDB for production)."""
