"""Everything that talks to the homeserver: its appservice API in, its client API out."""
