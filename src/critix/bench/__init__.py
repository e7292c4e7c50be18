"""Benchmark suites (`critix bench`): named suites, the runner that trains what a suite lacks, and its report."""
