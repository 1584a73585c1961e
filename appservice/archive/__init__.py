"""The compliance archive: tamper-evident storage, search, transcripts, retention."""
