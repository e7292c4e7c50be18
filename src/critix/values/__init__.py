"""Value heads, value losses and bootstrap targets."""
