"""Building blocks the components share: plain functions and data (no ComponentResource).

Components live in components/ (one ComponentResource per module); these are what they are made
of - labels and hardened pod specs, alarms and their table, IRSA roles, key policies, the flow
vocabulary, the DR budget arithmetic, the stateful-resource guard.
"""
