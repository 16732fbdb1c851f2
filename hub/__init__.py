"""The fleet hub: status ingest and store, fleet health, webhooks, notifications, streams."""
