"""Electronic approval seals (审批专用章): the registry, applying a seal to a PDF (PAdES) or any file
(detached CMS), the hub's RFC 3161 timestamp authority, and verification anyone can run."""
