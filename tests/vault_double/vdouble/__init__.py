"""A test double of HashiCorp Vault's HTTP API: the parts pgbouncer-vault's controller uses."""
