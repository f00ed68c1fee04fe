"""Cryptographic suite v1 and canonical encoding."""
