"""The ``ragent-oss`` kind: folders uploaded to a ragent-oss storage gateway (no listing)."""
