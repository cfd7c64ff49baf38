"""The machine the toolkit runs on: hardware probes and the choices made from them (device, precision,
TF32), and process settings applied once at the entry point (threads, oneDNN cache, malloc, signals)."""
