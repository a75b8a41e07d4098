# The differential harness: the same apps on the real Express 5 / Sails 1.5 (tests/node) and on
# the gateway, driven by the same cases, replies compared. See harness.py and docs/FIDELITY.md.
