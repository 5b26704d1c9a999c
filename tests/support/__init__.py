"""Test helpers shared by the contract, integration and e2e suites."""
