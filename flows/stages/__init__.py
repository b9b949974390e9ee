"""The Prefect flows of the one-way data flow (ingest → build → gate → publish → report) and their plain logic."""
