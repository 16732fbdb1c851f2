"""The TUI's widgets; each screen composes them and talks to them through messages."""
