"""Defences of issue 8: anti-fraud on checkout, the hardened web layer, privacy (GDPR)."""
