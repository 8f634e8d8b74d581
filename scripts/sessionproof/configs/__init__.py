"""Config rendering, generation and validation: templates for every runtime, `make generate`, `make validate`."""
