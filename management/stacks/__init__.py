"""Stack models, pure: what a compose stack is (compose_file), the house rules it must keep
(rules), what of its data a backup reaches (coverage), the isolated copy a boot drill starts
(sandbox), and the walks, manifests and comparisons of its file trees (trees).

No module here runs a program; each imports only the base modules and other stack models."""
