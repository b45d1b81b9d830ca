"""BITR, the reference agent (behaviour-invariant task encoder, Transformer world model,
conservative policy learning). Not implemented yet: see the project's open issues."""
