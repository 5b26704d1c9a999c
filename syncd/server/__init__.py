"""`syncd serve`: the reference implementation of the BDD file-service protocol."""
