"""Demo tooling: a throwaway Synapse and demo accounts for `make demo` and the tests."""
