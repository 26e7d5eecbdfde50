"""The hub's certificate authority for officials: CA files, issuance, revocation, CRLs, path validation."""
